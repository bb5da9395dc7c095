//! `balerfile h5 ...`: the HDF5 filter from the command line.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Subcommand;

use balerfile::bound::ErrorSpec;
use balerfile::h5filter::Layout;
use balerfile::h5tools::compress::{CompressOptions, CompressReport};
use balerfile::model::prepare::{ModelChoice, ModelOptions};
use balerfile::model::store::Store;
use balerfile::progress::Progress;

use super::{mb, parse_size, store_if_folder, ModelArgs, RuntimeArgs, TrainArgs};

#[derive(Subcommand)]
pub enum H5Command {
    /// Rewrite an HDF5 file with its float arrays stored through the balerfile filter, keeping
    /// every other object, attribute and group as it was (like h5repack).
    Compress {
        input: PathBuf,
        output: PathBuf,
        /// Filter only this dataset (repeatable); default: every float array.
        #[arg(short, long = "dataset", value_name = "NAME")]
        datasets: Vec<String>,
        /// Error bound: rel=E (E times the dataset's value range; each column's, in a table),
        /// abs=E, lossless, none, or DATASET:SPEC (repeatable; later wins). Default: lossless.
        #[arg(short, long = "error", value_name = "SPEC")]
        errors: Vec<ErrorSpec>,
        /// Raw bytes per HDF5 chunk (whole rows), e.g. 4M, 512K.
        #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_size)]
        chunk_size: u64,
        /// Compression level, zstd's (1-22), and how hard the encoder searches: 1 codes fast
        /// (no Lorenzo or zstd trial; the rANS coder, the adaptive one only where an estimate
        /// says it saves); from 10 a chunk of one small 2-D slice is searched in full (below
        /// 10 its walk is chosen by an estimate: 0.2 % larger, 2.7x the write speed) and a
        /// walk's block of 131 072 codes or more gets every coder trial (below 10 it is coded
        /// as at 1; below 10 a walk's block of 65 536 codes or more keeps the adaptive coder
        /// only where it saves 15 %, not 6 %, and then reads faster).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(*balerfile::pack::LEVELS.start() as i64..=*balerfile::pack::LEVELS.end() as i64))]
        level: i32,
        /// table (rows x features: per-column bounds, a dense model) or field, for every
        /// filtered dataset. Default: 2-D arrays of 2 to 1024 columns are tables.
        #[arg(long, value_parser = ["table", "field"])]
        layout: Option<String>,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        train: TrainArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Check a file's balerfile-filtered datasets: report chunks HDF5 stored unfiltered (h5py
    /// adds the filter as optional, so a failure stores raw data silently) and decode every
    /// chunk. Exit code 1 when any chunk is unfiltered or does not decode.
    Verify {
        file: PathBuf,
        /// Check only this dataset (repeatable).
        #[arg(short, long = "dataset", value_name = "NAME")]
        datasets: Vec<String>,
        /// Only look at the chunk records, do not decode.
        #[arg(long)]
        no_decode: bool,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Print the folder holding the filter plugin (libh5z_baler.so), for HDF5_PLUGIN_PATH.
    PluginPath,
}

pub fn run(cmd: H5Command, bar: &dyn Progress) -> Result<()> {
    match cmd {
        H5Command::Compress { input, output, datasets, errors, chunk_size, level, layout, model, train, runtime } => {
            if model.embed_model {
                anyhow::bail!("--embed-model is for .baler archives: the filter names its model by id (see README, HDF5 filter)");
            }
            if !model.feature_map.is_empty() {
                anyhow::bail!("--feature-map is for pack: the filter feeds a table's column j to the model's feature j");
            }
            let choice = match (&model.model, model.no_model) {
                (_, true) => ModelChoice::None,
                (Some(m), _) => ModelChoice::Use(store_if_folder(m)?),
                (None, false) => ModelChoice::Auto,
            };
            let opts = CompressOptions {
                datasets,
                errors,
                model: ModelOptions {
                    choice,
                    embed: false,
                    latent: model.latent_coding,
                    runtime: runtime.options(),
                    train: train.options(),
                    train_rows: model.train_rows,
                    feature_map: Default::default(),
                },
                chunk_bytes: chunk_size,
                level,
                layout: layout.map(|l| if l == "table" { Layout::Table } else { Layout::Field }),
            };
            let t = Instant::now();
            let report = balerfile::h5tools::compress::compress(&input, &output, &opts, bar)?;
            print_compress(&input, &output, &report, t.elapsed().as_secs_f64());
            Ok(())
        }
        H5Command::Verify { file, datasets, no_decode, runtime } => {
            runtime.options();
            let r = balerfile::h5tools::verify::verify(&file, &datasets, !no_decode)?;
            for d in &r.datasets {
                let state = if !d.failed.is_empty() {
                    format!("{} chunk(s) FAILED", d.failed.len())
                } else if !d.unfiltered.is_empty() {
                    format!("{} of {} chunk(s) stored UNFILTERED", d.unfiltered.len(), d.chunks)
                } else if d.not_decoded {
                    "ok (filtered; not decoded: other filters follow)".into()
                } else if no_decode {
                    "ok (filtered)".into()
                } else {
                    "ok (every chunk decodes)".into()
                };
                println!(
                    "{}: {} chunks, {} stored of {} raw ({:.2} %), {}: {state}",
                    d.path,
                    d.chunks,
                    mb(d.stored_bytes),
                    mb(d.raw_bytes),
                    100.0 * d.stored_bytes as f64 / d.raw_bytes.max(1) as f64,
                    d.filter
                );
                for off in d.unfiltered.iter().take(5) {
                    println!("  unfiltered chunk at {off:?}");
                }
                for (off, why) in d.failed.iter().take(5) {
                    println!("  chunk at {off:?}: {why}");
                }
            }
            if !r.other.is_empty() {
                println!("{} other dataset(s) without the balerfile filter", r.other.len());
            }
            if r.datasets.is_empty() {
                println!("{}: no dataset uses the balerfile filter", file.display());
            }
            if !r.ok() {
                anyhow::bail!("{}: some balerfile-filtered chunks are unfiltered or damaged (listed above)", file.display());
            }
            Ok(())
        }
        H5Command::PluginPath => {
            println!("{}", balerfile::h5tools::plugin_dir(&std::env::current_exe()?)?.display());
            Ok(())
        }
    }
}

fn print_compress(input: &std::path::Path, output: &std::path::Path, r: &CompressReport, secs: f64) {
    for id in &r.trained {
        println!("trained model {id}, stored in {}", Store::from_env().primary().display());
    }
    for n in &r.notes {
        println!("{n}");
    }
    let (mut raw, mut stored) = (0u64, 0u64);
    let mut decoders = std::collections::BTreeMap::new();
    for d in &r.datasets {
        raw += d.raw_bytes;
        stored += d.stored_bytes;
        let with = match &d.model {
            Some(id) => {
                decoders.insert(id.clone(), d.decoder_bytes);
                format!(
                    "; {:.2} % with the model's decoder ({})",
                    100.0 * (d.stored_bytes + d.decoder_bytes) as f64 / d.raw_bytes.max(1) as f64,
                    mb(d.decoder_bytes)
                )
            }
            None => String::new(),
        };
        println!(
            "{}: {:?} in chunks {:?}, {}: {} -> {} ({:.2} % of raw{with})",
            d.path,
            d.shape,
            d.chunk,
            d.filter,
            mb(d.raw_bytes),
            mb(d.stored_bytes),
            100.0 * d.stored_bytes as f64 / d.raw_bytes.max(1) as f64
        );
    }
    let dec: u64 = decoders.values().sum();
    let with = if dec > 0 { format!("; {:.2} % counting the decoders", 100.0 * (stored + dec) as f64 / raw.max(1) as f64) } else { String::new() };
    println!(
        "compressed {} -> {}: {} datasets filtered ({} -> {}, {:.2} %{with}), {} copied as they were, in {secs:.2} s",
        input.display(),
        output.display(),
        r.datasets.len(),
        mb(raw),
        mb(stored),
        100.0 * stored as f64 / raw.max(1) as f64,
        r.copied.len()
    );
}
