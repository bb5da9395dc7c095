//! `unpack`: container -> codec -> sink, the reverse of `pack`, a batch of chunks at a time.

use std::path::Path;


use crate::codec::{ChunkCodec, VarCoding};
use crate::container::ArchiveReader;
use crate::error::{Error, Result};
use crate::io;
use crate::progress::Progress;

#[derive(Clone, Debug, Default)]
pub struct UnpackOptions {
    /// Only these datasets (names as in the header, with or without the leading '/').
    pub datasets: Vec<String>,
    /// With `datasets`, to an HDF5 or netCDF output: their coordinates too
    /// (`io::select_with_coordinates`).
    pub coordinates: bool,
    pub threads: usize,
    /// Where the archive's models run.
    #[cfg(feature = "runtime")]
    pub runtime: crate::runtime::RuntimeOptions,
    /// The output format (h5, root, npy); None: from the output's extension.
    pub format: Option<String>,
    pub sink: io::SinkOptions,
}

/// The models an archive's datasets need, loaded for decoding (decoders only).
pub struct ArchiveModels {
    /// Per model of the header, the chunks of the selected datasets that carry its latent.
    pub latent_chunks: Vec<u64>,
    #[cfg(feature = "runtime")]
    loaded: Vec<Option<crate::model::loaded::LoadedModel>>,
}

/// Per model of the header, how many chunks of the selected datasets carry its latent block.
/// A model no chunk used is not needed to decode (the codec leaves the latent out of a chunk
/// where it does not pay), so an archive whose chunks never used its model unpacks without it.
pub fn latent_chunks(reader: &ArchiveReader, selected: &[usize]) -> Result<Vec<u64>> {
    let header = reader.header();
    let mut counts = vec![0u64; header.models.len()];
    let mut wanted = vec![false; header.datasets.len()];
    for &d in selected {
        wanted[d] = true;
    }
    for (i, e) in reader.index().iter().enumerate() {
        let d = e.dataset as usize;
        let Some(dm) = header.datasets.get(d).and_then(|ds| ds.model.as_ref()) else { continue };
        if wanted[d] && crate::codec::has_latent(&reader.chunk_head(i, crate::codec::LATENT_COUNT_END)?) {
            counts[dm.model as usize] += 1;
        }
    }
    Ok(counts)
}

impl ArchiveModels {
    /// Loads the models whose latent some chunk of the selected datasets carries: embedded
    /// copies first, else from the store.
    pub fn load(reader: &ArchiveReader, selected: &[usize], opts: &UnpackOptions) -> Result<ArchiveModels> {
        let header = reader.header();
        let used = latent_chunks(reader, selected)?;
        let needed: Vec<usize> = (0..used.len()).filter(|&m| used[m] > 0).collect();
        #[cfg(feature = "runtime")]
        {
            let store = crate::model::store::Store::from_env();
            let mut loaded = Vec::with_capacity(header.models.len());
            for (m, r) in header.models.iter().enumerate() {
                if !needed.contains(&m) {
                    loaded.push(None);
                    continue;
                }
                let bundle = crate::model::loaded::bundle_for(reader, m, r, &store)?;
                loaded.push(Some(crate::model::loaded::LoadedModel::load(bundle, opts.runtime, false)?));
            }
            Ok(ArchiveModels { latent_chunks: used, loaded })
        }
        #[cfg(not(feature = "runtime"))]
        {
            let _ = opts;
            match needed.first() {
                None => Ok(ArchiveModels { latent_chunks: used }),
                Some(&m) => Err(Error::Unsupported {
                    path: reader.path().into(),
                    what: format!("coded with model {}; this balerfile was built without the runtime feature", header.models[m].id),
                }),
            }
        }
    }

    /// The codec's model plan for dataset `d`: None when it has no model, or when none of its
    /// chunks carries the model's latent (then the model was not loaded: no chunk needs it).
    pub fn plan(&self, header: &crate::header::Header, d: usize) -> Result<Option<crate::codec::model_stage::ModelPlan<'_>>> {
        let Some(dm) = &header.datasets[d].model else { return Ok(None) };
        #[cfg(feature = "runtime")]
        {
            match self.loaded.get(dm.model as usize).and_then(|m| m.as_ref()) {
                Some(m) => m.plan(dm).map(Some),
                None => Ok(None),
            }
        }
        #[cfg(not(feature = "runtime"))]
        {
            let _ = dm;
            Ok(None)
        }
    }
}

/// The codec settings of each dataset's variables, as the header records them.
pub fn var_codings(reader: &ArchiveReader) -> Vec<Vec<VarCoding>> {
    reader
        .header()
        .datasets
        .iter()
        .map(crate::pack::codings)
        .collect()
}

pub fn codec_of(reader: &ArchiveReader) -> Result<ChunkCodec> {
    let known = crate::codec::PIPELINE;
    let mut level = crate::pack::DEFAULT_LEVEL;
    for s in &reader.header().codec.pipeline {
        if !known.contains(&s.stage.as_str()) {
            return Err(Error::Unsupported {
                path: reader.path().into(),
                what: format!("codec stage '{}' is not implemented by this balerfile", s.stage),
            });
        }
        level = s.level.unwrap_or(level);
    }
    Ok(ChunkCodec { level, threads: 1 })
}

/// Decodes chunk `i` of the archive into one buffer per variable.
pub fn decode_chunk(
    reader: &ArchiveReader,
    codec: &ChunkCodec,
    codings: &[Vec<VarCoding>],
    plans: &[Option<crate::codec::model_stage::ModelPlan>],
    i: usize,
) -> Result<Vec<Vec<u8>>> {
    let e = reader.index()[i];
    let ds = &reader.header().datasets[e.dataset as usize];
    let bytes = reader.read_chunk(i)?;
    codec
        .decode(&bytes, e.place(), &codings[e.dataset as usize], ds.row_elems(), plans[e.dataset as usize].as_ref())
        .map_err(|what| Error::corrupt(reader.path(), format!("chunk {i} of {}: {what}", ds.path)))
}

#[derive(Clone, Debug, Default)]
pub struct UnpackReport {
    /// Bytes of the datasets written.
    pub raw_bytes: u64,
    /// Objects carried from the source (ROOT histograms, ...) that this output cannot hold.
    pub not_written: Vec<String>,
    /// What the output keeps otherwise than the source had it (filters HDF5 lacks), by dataset.
    pub notes: Vec<String>,
}

pub fn unpack(input: &Path, output: &Path, opts: &UnpackOptions, progress: &dyn Progress) -> Result<UnpackReport> {
    crate::atomic::check_not_input(input, output)?;
    let reader = ArchiveReader::open(input)?;
    // An HDF5 or netCDF-4 output holds the selected datasets' coordinates too, which link to
    // them; `.npy` holds one array and `.npz` the arrays asked for.
    let mut opts = opts.clone();
    if opts.coordinates && !opts.datasets.is_empty() && io::is_hdf5_output(output, opts.format.as_deref()) {
        let header = reader.header();
        let chosen = io::select_with_coordinates(reader.path(), &header.datasets, &opts.datasets)?;
        opts.datasets = chosen.iter().map(|&d| header.datasets[d].path.clone()).collect();
    }
    unpack_into(&reader, |header, selected| io::create_sink_as(output, opts.format.as_deref(), header, selected, &opts.sink), &opts, progress)
}

/// Decodes the datasets `opts` selects of an open archive into the sink `make_sink` makes for
/// them (a file by its type, or memory).
pub fn unpack_into(
    reader: &ArchiveReader,
    make_sink: impl FnOnce(&crate::header::Header, &[usize]) -> Result<Box<dyn io::Sink>>,
    opts: &UnpackOptions,
    progress: &dyn Progress,
) -> Result<UnpackReport> {
    let codec = codec_of(reader)?;
    let header = reader.header();
    let selected = io::select(reader.path(), &header.datasets, &opts.datasets)?;
    let mut sink = make_sink(header, &selected)?;
    let mut carried = Vec::with_capacity(header.root_objects.len());
    for (i, o) in header.root_objects.iter().enumerate() {
        carried.push((o.clone(), reader.root_object(i)?));
    }
    let mut not_written = Vec::new();
    if !carried.is_empty() && !sink.write_carried(carried)? {
        not_written =
            header.root_objects.iter().filter(|o| o.kind == crate::header::RootObjectKind::Key).map(|o| format!("{} ({})", o.path(), o.class)).collect();
    }
    let codings = var_codings(reader);
    let models = ArchiveModels::load(reader, &selected, opts)?;
    let mut plans = Vec::with_capacity(header.datasets.len());
    for d in 0..header.datasets.len() {
        plans.push(if selected.contains(&d) { models.plan(header, d)? } else { None });
    }
    let pool = crate::pack::thread_pool(opts.threads)?;
    let chunks: Vec<usize> =
        (0..reader.index().len()).filter(|&i| selected.contains(&(reader.index()[i].dataset as usize))).collect();
    let total: u64 = selected.iter().map(|&d| header.datasets[d].raw_bytes()).sum();
    progress.start("unpacking", total);
    // Chunks decoded and not yet written: two a thread, as `pack` holds them.
    let window = pool.current_num_threads().max(1) * 2;
    let codec = codec.sharing(pool.current_num_threads(), chunks.len());
    crate::ordered::in_order(
        &pool,
        chunks.len(),
        window,
        |i| Ok(chunks[i]),
        |_, c| decode_chunk(reader, &codec, &codings, &plans, c),
        |i, data| {
            let e = reader.index()[chunks[i]];
            sink.write_rows(e.dataset as usize, e.row_start..e.row_start + e.rows, &data?)?;
            progress.advance(e.rows * header.datasets[e.dataset as usize].row_bytes());
            Ok(())
        },
    )?;
    let notes = sink.notes();
    sink.finish()?;
    progress.finish();
    Ok(UnpackReport { raw_bytes: total, not_written, notes })
}
