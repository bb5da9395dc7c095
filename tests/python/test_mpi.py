"""Parallel HDF5: two MPI ranks write one filter-compressed dataset collectively and read it back,
with Debian's MPI build of h5py (python3-h5py-mpi, libhdf5-openmpi) and the filter plugin found
through HDF5_PLUGIN_PATH, as an HPC job would run it (HDF5 >= 1.10.2 writes filtered datasets in
parallel only collectively)."""
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

import balerfile_h5

SYSTEM_PYTHON = "/usr/bin/python3"

RANKS = textwrap.dedent(
    """
    import json, sys
    import numpy as np, h5py
    from mpi4py import MPI

    path, ref, cd = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    data = np.load(ref)
    rows = data.shape[0] // size
    with h5py.File(path, "w", driver="mpio", comm=comm) as f:
        d = f.create_dataset("air", shape=data.shape, dtype=data.dtype, chunks=(rows,) + data.shape[1:],
                             compression=cd["compression"], compression_opts=tuple(cd["compression_opts"]))
        with d.collective:
            d[rank * rows:(rank + 1) * rows] = data[rank * rows:(rank + 1) * rows]
    with h5py.File(path, "r", driver="mpio", comm=comm) as f:
        part = f["air"][rank * rows:(rank + 1) * rows]
    err = float(np.abs(part.astype("f8") - data[rank * rows:(rank + 1) * rows]).max())
    errs = comm.gather(err, root=0)
    if rank == 0:
        print(json.dumps({"ranks": size, "max_err": max(errs)}))
    """
)


def mpi_ready():
    if not (shutil.which("mpirun") and Path(SYSTEM_PYTHON).exists()):
        return False
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import h5py, mpi4py; assert h5py.get_config().mpi"], capture_output=True,
                       env=dict(os.environ, H5PY_ALWAYS_USE_MPI="1"))
    return r.returncode == 0


@pytest.mark.skipif(not mpi_ready(), reason="needs openmpi-bin and python3-h5py-mpi (scripts/setup.sh installs them)")
def test_two_ranks_write_collectively(hadcm3, tmp_path):
    with h5py.File(hadcm3, "r") as f:
        data = f["air_temperature"][:240]
    ref = tmp_path / "ref.npy"
    np.save(ref, data)
    kw = dict(balerfile_h5.Baler(error="abs=0.01"))
    script = tmp_path / "ranks.py"
    script.write_text(RANKS)
    out = tmp_path / "mpi.h5"
    env = dict(os.environ, HDF5_PLUGIN_PATH=str(balerfile_h5.plugin_dir()), OMPI_MCA_plm_rsh_agent="")
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", SYSTEM_PYTHON, str(script), str(out), str(ref),
           json.dumps({"compression": kw["compression"], "compression_opts": list(kw["compression_opts"])})]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"mpirun failed:\n{r.stdout}\n{r.stderr}"
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["ranks"] == 2 and res["max_err"] <= 0.01
    # Read back serially by the venv's h5py (its own HDF5): every element within bound, and
    # the dataset really is filtered.
    with h5py.File(out, "r") as f:
        d = f["air"]
        assert d.id.get_create_plist().get_filter_by_id(balerfile_h5.FILTER_ID) is not None
        assert np.abs(d[()].astype("f8") - data).max() <= 0.01
        assert d.id.get_storage_size() < data.nbytes / 3
