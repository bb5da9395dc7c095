"""The h5py helper's first name, kept for scripts that import it: everything is
``balerfile.h5`` (importing either registers the filter with h5py's HDF5)."""
import balerfile  # noqa: F401  (registers the filter with h5py's HDF5)
from balerfile.h5 import *  # noqa: F401,F403
from balerfile.h5 import FILTER_ID, LAYOUT_VERSION, LAYOUTS, PLUGIN_NAME, Baler, find_model, model_kind, parse_cd_values, plugin_dir, plugin_file, register  # noqa: F401
