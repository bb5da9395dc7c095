//! The `balerfile` command line. Library errors become one line on stderr and exit code 1.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use balerfile::bound::ErrorSpec;
use balerfile::codec::model_stage::LatentCoding;
use balerfile::model::prepare::{ModelChoice, ModelOptions};
use balerfile::model::store::Store;
use balerfile::pack::{PackOptions, PackReport};
use balerfile::progress::Progress;
use balerfile::runtime::{Device, RuntimeOptions};
use balerfile::train::TrainOptions;

mod h5;

#[derive(Parser)]
#[command(name = "balerfile", version, about = "Error-bounded compression of scientific data into .baler archives")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compress an HDF5 file (all numeric datasets, or those named), a ROOT file (its TTrees), a
    /// .npy or a NumPy .npz file (every numeric array) into a .baler archive.
    Pack {
        /// HDF5 (.h5, .nc, ...), ROOT (.root), .npy or .npz file.
        input: PathBuf,
        /// The archive to write (replaced atomically if it exists).
        #[arg(short, long)]
        output: PathBuf,
        /// Pack only this dataset (repeatable), with the coordinates it is read by (dimension
        /// scales, CF coordinates, bounds, grid mapping); default: every numeric dataset.
        #[arg(short, long = "dataset", value_name = "NAME")]
        datasets: Vec<String>,
        /// With --dataset: only the datasets named, not their coordinates.
        #[arg(long, requires = "datasets")]
        no_coordinates: bool,
        /// Error bound: rel=E (E times the variable's range of valid values, 0 < E < 1), abs=E,
        /// lossless, none (the model's output alone, no bound: Baler's mode), or VARIABLE:SPEC
        /// for one variable, dataset, compound field or table column (repeatable; later wins).
        /// Default: lossless. Fill values and NaN are always kept exactly. Integers are lossless
        /// unless a bcae2d model covers them (then the bound is a whole number of counts);
        /// bools always are.
        #[arg(short, long = "error", value_name = "SPEC")]
        errors: Vec<ErrorSpec>,
        /// Raw bytes per chunk, e.g. 4M, 512K (chunks are coded independently and in parallel).
        #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_size)]
        chunk_size: u64,
        /// Compression level, zstd's (1-22), and how hard the encoder searches: 1 codes fast
        /// (no Lorenzo or zstd trial; the rANS coder, the adaptive one only where an estimate
        /// says it saves); from 10 a chunk of one small 2-D slice is searched in full (below
        /// 10 its walk is chosen by an estimate: 0.2 % larger, 2.7x the write speed) and a
        /// walk's block of 131 072 codes or more gets every coder trial (below 10 it is coded
        /// as at 1; below 10 a walk's block of 65 536 codes or more keeps the adaptive coder
        /// only where it saves 15 %, not 6 %, and then reads faster), and every chunk of a
        /// field searches its own walk (below 10 a field of four or more chunks is searched on
        /// three, and where they agree every chunk takes it).
        #[arg(long, default_value_t = balerfile::pack::DEFAULT_LEVEL, value_parser = clap::value_parser!(i32).range(*balerfile::pack::LEVELS.start() as i64..=*balerfile::pack::LEVELS.end() as i64))]
        level: i32,
        /// How 2-D float arrays are read: table (a variable per column, each with its own bound)
        /// or field (one variable, one bound); DATASET:table for one dataset (repeatable, later
        /// wins). Default: a 2-D float array of 2 to 1024 columns and at least 8 rows per column
        /// is a table; the choice is printed.
        #[arg(long, value_name = "table|field|DATASET:LAYOUT")]
        layout: Vec<balerfile::io::table::LayoutSpec>,
        /// A value that marks missing elements of float variables (kept exactly, outside every
        /// range and statistic), for files without CF attributes (.npy): -999, or VARIABLE:-999;
        /// `none` takes declared fill values (_FillValue, ...) as ordinary values. Repeatable:
        /// every value given is a marker, `none` drops those before it. Default: CF attributes,
        /// and NaN always.
        #[arg(long = "fill-value", value_name = "[VARIABLE:]VALUE|none", allow_negative_numbers = true)]
        fill_values: Vec<balerfile::io::view::FillSpec>,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        root: RootArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        train: TrainArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Train a model on a table (HDF5, .npy or .npz) and store it as an ONNX bundle.
    Train {
        input: PathBuf,
        /// The table to train on (default: the only numeric dataset).
        #[arg(short, long = "dataset", value_name = "NAME")]
        datasets: Vec<String>,
        /// Also write the bundle to this folder (it always goes to the model store).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Leave these variables out of the model: VARIABLE:lossless (repeatable).
        #[arg(short, long = "error", value_name = "SPEC")]
        errors: Vec<ErrorSpec>,
        /// Rows to train on at most: an evenly spaced sample of larger tables.
        #[arg(long, default_value_t = 200_000)]
        train_rows: usize,
        /// The model: dense (tables) or bcae2d (sparse wedges, e.g. TPC data).
        #[arg(long, value_enum, default_value = "dense")]
        kind: ModelKind,
        #[command(flatten)]
        train: TrainArgs,
        #[command(flatten)]
        net: ConvNetArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// The model store: list, show, import (BALER_MODEL_PATH, else ~/.local/share/balerfile/models).
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Decompress a .baler archive into HDF5 (.h5), ROOT (.root), .npz or .npy.
    Unpack {
        input: PathBuf,
        /// Output file: .h5 (every dataset, with groups and attributes; .nc, .nc4 and .cdf are
        /// the same netCDF-4 file), .root (TTrees), .npz (every dataset as an array, column names
        /// as `names`) or .npy (one dataset).
        #[arg(short, long)]
        output: PathBuf,
        /// The output's format when its name does not say: h5 (nc: the same, netCDF-4), root,
        /// npz or npy.
        #[arg(long, value_parser = ["h5", "nc", "root", "npz", "npy"])]
        to: Option<String>,
        /// Unpack only this dataset (repeatable); to HDF5 or netCDF with its coordinates.
        #[arg(short, long = "dataset", value_name = "NAME")]
        datasets: Vec<String>,
        /// With --dataset: only the datasets named, not their coordinates.
        #[arg(long, requires = "datasets")]
        no_coordinates: bool,
        /// ROOT output: how baskets and pages are compressed: zstd, zlib, lz4 or lzma with an
        /// optional :LEVEL (ROOT's 1-9), none, or ROOT's number (505 = zstd:5, ROOT's default).
        #[arg(long, value_name = "ALGO[:LEVEL]", default_value = "zstd:5")]
        root_compression: balerfile::io::RootCompression,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// The HDF5 filter: rewrite a file with it (compress), check a file (verify), find the plugin.
    H5 {
        #[command(subcommand)]
        command: h5::H5Command,
    },
    /// What compression did to the data: decode ARCHIVE beside ORIGINAL (the file that was packed)
    /// and write REPORT_DIR/report.html (plots embedded), summary.json and plots/*.png: per
    /// variable the original and reconstructed distributions, residual and response (Baler's
    /// Table 2), the largest error against the bound, and the ratios with and without the decoder.
    Eval {
        /// The HDF5, ROOT, .npy or .npz file that was packed.
        original: PathBuf,
        archive: PathBuf,
        /// The report folder (created if needed; its report.html and summary.json are replaced).
        #[arg(short, long, value_name = "REPORT_DIR")]
        output: PathBuf,
        /// Also compress the original with SZ3 and ZFP at the same bounds and with zstd, through
        /// h5py and hdf5plugin in --python, and add their sizes and errors to the report.
        #[arg(long)]
        compare: bool,
        /// The Python that runs the peers (needs numpy, h5py, hdf5plugin).
        #[arg(long, value_name = "PATH", default_value = "python3")]
        python: PathBuf,
        /// Histogram bins.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=100000))]
        bins: u32,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        root: RootArgs,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// Show what an archive holds: datasets, variables, bounds, sizes and ratio.
    Inspect {
        file: PathBuf,
        /// Print JSON (with the full header) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Every bundle in the store, with its id, kind, features and size.
    List,
    /// One bundle's manifest (id, unique id prefix of 8+ digits, or folder).
    Show { id: String },
    /// Import a model exported from PyTorch (or any ONNX producer): ENCODER maps float32
    /// [batch, F] to [batch, L], DECODER maps [batch, L] back to [batch, F].
    Import {
        encoder: PathBuf,
        decoder: PathBuf,
        /// The F input columns, in order, as the data names them: a,b,c.
        #[arg(long, value_delimiter = ',', required = true)]
        features: Vec<String>,
        /// Per-feature normalisation the model expects, x_model = (x - offset) / scale: a JSON
        /// file {"offset": [...], "scale": [...]}. Default: none (the model takes raw values).
        #[arg(long, value_name = "FILE")]
        normalisation: Option<PathBuf>,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
}

/// ROOT input: which trees and branches.
#[derive(clap::Args)]
struct RootArgs {
    /// ROOT: pack only this tree (repeatable); default: every TTree.
    #[arg(long = "tree", value_name = "NAME")]
    trees: Vec<String>,
    /// ROOT: pack only branches matching this glob (`*`, `?`; repeatable); a jagged branch
    /// brings its counter.
    #[arg(long = "branches", value_name = "GLOB")]
    branches: Vec<String>,
    /// Refuse what balerfile cannot keep (ROOT text branches and objects, HDF5 datasets it
    /// cannot code such as float16 or text) instead of skipping it with a warning.
    #[arg(long)]
    strict: bool,
}

impl RootArgs {
    fn select(&self) -> balerfile::io::RootSelect {
        balerfile::io::RootSelect { trees: self.trees.clone(), branches: self.branches.clone(), strict: self.strict }
    }
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Code with this model: a bundle folder, an id, or a unique id prefix. Default: train one
    /// on each table of the input and store it.
    #[arg(long, value_name = "ID|DIR", conflicts_with = "no_model")]
    model: Option<String>,
    /// No model stage: quantisation and entropy coding only.
    #[arg(long)]
    no_model: bool,
    /// Put the decoder inside the archive, so it unpacks with no model store.
    #[arg(long)]
    embed_model: bool,
    /// Rows to train on at most when training: an evenly spaced sample of larger tables.
    #[arg(long, default_value_t = 200_000)]
    train_rows: usize,
    /// How the latent is stored: f16, or a bit count (2-16) of uniform codes.
    #[arg(long, default_value = "f16", value_parser = parse_latent)]
    latent_coding: LatentCoding,
    /// With --model: code input VARIABLE as the model's feature MODELNAME where their names
    /// differ (repeatable), or a file of such lines. Features otherwise match by full name, then
    /// by name within the table (the tree or dataset prefix left out).
    #[arg(long = "feature-map", value_name = "MODELNAME=VARIABLE|FILE", requires = "model")]
    feature_map: Vec<String>,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Encoder hidden layer widths; the decoder mirrors them.
    #[arg(long, value_delimiter = ',', default_value = "200,100,50")]
    hidden: Vec<usize>,
    /// Latent width (default: features / --ratio, at least 2).
    #[arg(long)]
    latent: Option<usize>,
    /// Features per latent value when --latent is not given.
    #[arg(long, default_value_t = 32.0)]
    ratio: f64,
    /// Epochs (dense: 50; bcae2d: 500, the paper's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Rows per batch (dense: 512; bcae2d: 4 wedges, the paper's).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate [dense, bcae2d: 1e-3; conv: 2e-3].
    #[arg(long)]
    lr: Option<f64>,
    /// adam or adamw.
    #[arg(long, default_value = "adam")]
    optimizer: balerfile::train::Optimizer,
    /// AdamW's weight decay.
    #[arg(long, default_value_t = 1e-2)]
    weight_decay: f64,
    /// Share of rows held out for validation and early stopping.
    #[arg(long, default_value_t = 0.1)]
    validation: f64,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long, default_value_t = 8)]
    patience: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Model name recorded in the manifest.
    #[arg(long)]
    name: Option<String>,
}

/// The convolutional models' shape (`--kind bcae2d`: the defaults are the paper's; `--kind
/// conv`: tiles of fields).
#[derive(clap::Args)]
struct ConvNetArgs {
    /// m: encoder blocks (each two residual blocks).
    #[arg(long, default_value_t = 4)]
    encoder_blocks: u64,
    /// n: blocks of each of the two decoders.
    #[arg(long, default_value_t = 8)]
    decoder_blocks: u64,
    /// d: downsamplings (and upsamplings); the code is (code channels, H / 2^d, W / 2^d)
    /// [bcae2d: 3, conv: 3].
    #[arg(long)]
    downsamples: Option<u64>,
    /// Channels inside the blocks [bcae2d: 32, conv: 16].
    #[arg(long)]
    channels: Option<u64>,
    /// Channels of the code [bcae2d: 32, which gives the paper's (32, 24, 32) code and ratio
    /// 31.125; its Algorithm 1 (a final 32 -> 16 convolution) would be 16. conv: 4].
    #[arg(long)]
    code_channels: Option<u64>,
    /// conv: the edge of the square tiles each slice is cut into.
    #[arg(long, default_value_t = 16)]
    block: u64,
    /// conv: residual blocks after each pooling and each upsampling.
    #[arg(long, default_value_t = 1)]
    stage_blocks: u64,
    /// Epochs at the initial learning rate before it decays by 5% every --lr-every epochs.
    #[arg(long, default_value_t = 50)]
    lr_hold: usize,
    #[arg(long, default_value_t = 10)]
    lr_every: usize,
}

impl ConvNetArgs {
    fn arch(&self, wedge: [u64; 3]) -> balerfile::model::bcae2d::Bcae2dArch {
        balerfile::model::bcae2d::Bcae2dArch {
            hidden: self.channels.unwrap_or(32),
            code_channels: self.code_channels.unwrap_or(32),
            encoder_blocks: self.encoder_blocks,
            decoder_blocks: self.decoder_blocks,
            downsamples: self.downsamples.unwrap_or(3),
            ..balerfile::model::bcae2d::Bcae2dArch::paper(wedge)
        }
    }

    fn conv_arch(&self, row: Vec<u64>) -> balerfile::model::conv::ConvArch {
        balerfile::model::conv::ConvArch {
            row,
            block: self.block,
            hidden: self.channels.unwrap_or(16),
            code_channels: self.code_channels.unwrap_or(4),
            downsamples: self.downsamples.unwrap_or(3),
            blocks_per_stage: self.stage_blocks,
        }
    }

    fn conv_options(&self, t: &TrainArgs) -> balerfile::train::conv::ConvOptions {
        let d = balerfile::train::conv::ConvOptions::default();
        balerfile::train::conv::ConvOptions {
            epochs: t.epochs.unwrap_or(d.epochs),
            batch_size: t.batch_size.unwrap_or(d.batch_size),
            learning_rate: t.lr.unwrap_or(d.learning_rate),
            validation: t.validation,
            patience: t.patience,
            seed: t.seed,
            name: t.name.clone(),
        }
    }

    fn options(&self, t: &TrainArgs) -> balerfile::train::bcae2d::Bcae2dOptions {
        balerfile::train::bcae2d::Bcae2dOptions {
            epochs: t.epochs.unwrap_or(500),
            batch_size: t.batch_size.unwrap_or(4),
            learning_rate: t.lr.unwrap_or(1e-3),
            lr_hold: self.lr_hold,
            lr_every: self.lr_every,
            weight_decay: t.weight_decay,
            validation: t.validation,
            seed: t.seed,
            name: t.name.clone(),
            ..Default::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ModelKind {
    /// Baler's dense autoencoder for tables (rows x features).
    Dense,
    /// BCAE-2D for sparse wedges (rows of shape layers x height x width, e.g. TPC ADC counts).
    Bcae2d,
    /// A convolutional tile autoencoder for continuous fields (the last two axes are the image).
    Conv,
}

impl TrainArgs {
    fn options(&self) -> TrainOptions {
        TrainOptions {
            hidden: self.hidden.clone(),
            latent: self.latent,
            ratio: self.ratio,
            epochs: self.epochs.unwrap_or(50),
            batch_size: self.batch_size.unwrap_or(512),
            learning_rate: self.lr.unwrap_or(1e-3),
            optimizer: self.optimizer,
            weight_decay: self.weight_decay,
            validation: self.validation,
            patience: self.patience,
            seed: self.seed,
            negative_slope: 0.01,
            name: self.name.clone(),
        }
    }
}

/// How a command that reads a whole archive or file runs and reports.
#[derive(clap::Args)]
struct RunArgs {
    /// Worker threads; default: all cores.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Quiet: no per-variable table (pack and eval print only their summary: the ratio and the
    /// largest error; unpack nothing); warnings and errors still print.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct RuntimeArgs {
    /// Where models run: cpu, or cuda[:N] (an error, never a silent CPU fall-back, if CUDA
    /// cannot be used).
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// The ONNX Runtime library (libonnxruntime.so); default: found automatically.
    #[arg(long, value_name = "PATH")]
    onnxruntime: Option<PathBuf>,
    /// Run the encoder in half precision (f16 weights and activations, as the BCAE-2D paper
    /// deploys it). The stored code is what decoding reads, so bounds hold unchanged.
    #[arg(long)]
    half: bool,
}

impl RuntimeArgs {
    fn options(&self) -> RuntimeOptions {
        if let Some(p) = &self.onnxruntime {
            balerfile::runtime::set_library(p);
        }
        RuntimeOptions { device: self.device, intra_threads: 1, half_encoder: self.half }
    }
}

fn parse_latent(s: &str) -> Result<LatentCoding, String> {
    s.parse()
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size (e.g. 4M, 512K, 1048576)"))?;
    n.checked_mul(mult).filter(|&b| b > 0).ok_or_else(|| format!("'{s}' is not a usable size"))
}

/// An indicatif bar; indicatif draws nothing when stderr is not a terminal.
struct Bar(Mutex<Option<ProgressBar>>);

impl Progress for Bar {
    fn start(&self, what: &str, total: u64) {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap()
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        *self.0.lock().unwrap() = Some(bar);
    }
    fn message(&self, msg: &str) {
        if let Some(b) = &*self.0.lock().unwrap() {
            b.set_message(msg.to_string());
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = &*self.0.lock().unwrap() {
            b.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.0.lock().unwrap().take() {
            b.finish_and_clear();
        }
    }
}

pub fn run() -> i32 {
    use clap::error::ErrorKind;
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return 0;
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return 2;
        }
        Err(e) => {
            // Same one-line shape as every other failure; clap's first line names the problem.
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("balerfile: error: {first} (see balerfile --help)");
            return 2;
        }
    };
    match dispatch(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("balerfile: error: {e:#}");
            1
        }
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.3} MB", bytes as f64 / 1e6)
}

/// The datasets a `--dataset` selection brought along (`io::select_with_coordinates`).
fn brought_along(asked: &[String], got: &[balerfile::header::DatasetInfo]) -> Vec<String> {
    if asked.is_empty() {
        return Vec::new();
    }
    got.iter().map(|d| d.name()).filter(|n| !asked.iter().any(|a| a.trim_start_matches('/') == *n)).map(String::from).collect()
}

fn dispatch(cmd: Command) -> Result<()> {
    let bar = Bar(Mutex::new(None));
    match cmd {
        Command::Pack { input, output, datasets, no_coordinates, errors, chunk_size, level, layout, fill_values, run: RunArgs { threads, quiet }, root, model, train, runtime } => {
            let t = Instant::now();
            balerfile::atomic::check_not_input(&input, &output)?;
            let source = balerfile::io::open_source_with(&input, &datasets, &root.select(), !no_coordinates)?;
            let brought = brought_along(&datasets, &source.layout().datasets);
            if !brought.is_empty() && !quiet {
                println!("--dataset: with the coordinates it is read by (dimension scales, CF coordinates and bounds): {}", brought.join(", "));
            }
            let (mut source, choices) = balerfile::io::view::as_meant(source, &input, &layout, &fill_values)?;
            if !quiet {
                for c in &choices {
                    println!("{}", c.describe());
                }
            }
            let choice = match (&model.model, model.no_model) {
                (_, true) => ModelChoice::None,
                (Some(m), _) => ModelChoice::Use(store_if_folder(m)?),
                (None, false) => ModelChoice::Auto,
            };
            let mopts = ModelOptions {
                choice,
                embed: model.embed_model,
                latent: model.latent_coding,
                runtime: runtime.options(),
                train: train.options(),
                train_rows: model.train_rows,
                feature_map: balerfile::model::select::FeatureMap::parse(&model.feature_map)?,
            };
            let packed = balerfile::bound::cf_packed_kept_exact(&errors, &source.layout().datasets)?;
            if !packed.is_empty() && !quiet {
                println!("{}: CF-packed integers (scale_factor, add_offset), kept exactly: a bound applies to float variables", packed.join(", "));
            }
            let prepared = balerfile::model::prepare::prepare(source.as_mut(), &errors, &mopts, &bar)?;
            let train_secs = t.elapsed().as_secs_f64();
            let opts = PackOptions { errors, chunk_bytes: chunk_size, level, threads, strict: root.strict };
            let models = prepared.pack_models(model.embed_model);
            let t2 = Instant::now();
            let report = balerfile::pack::pack(source.as_mut(), &output, &opts, &models, &prepared.uses, &bar)?;
            warn_skipped(&input, &report.skipped);
            for id in &prepared.trained {
                println!("trained model {id} in {train_secs:.1} s, stored in {}", Store::from_env().primary().display());
            }
            if !quiet {
                for n in &prepared.notes {
                    println!("{n}");
                }
            }
            print_pack(&input, &output, &report, t2.elapsed().as_secs_f64(), quiet);
            Ok(())
        }
        Command::Train { input, datasets, output, errors, train_rows, kind, train, net, runtime } => {
            runtime.options();
            if let Some(dir) = &output {
                balerfile::model::Bundle::check_dir_target(dir)?;
            }
            let source = balerfile::io::open_source(&input, &datasets)?;
            let (mut source, _) = balerfile::io::view::as_meant(source, &input, &[], &[])?;
            let layout = source.layout().clone();
            let tables: Vec<usize> = (0..layout.datasets.len()).collect();
            let d = match tables.as_slice() {
                [d] => *d,
                _ => anyhow::bail!(
                    "{}: {} datasets; name the table to train on with --dataset",
                    input.display(),
                    layout.datasets.len()
                ),
            };
            let ds = &layout.datasets[d];
            if kind == ModelKind::Conv {
                return train_conv(&input, source.as_mut(), d, &layout, train_rows, &train, &net, output.as_deref(), &bar);
            }
            if kind == ModelKind::Bcae2d {
                return train_bcae2d(&input, source.as_mut(), d, &layout, train_rows, &train, &net, output.as_deref(), &bar);
            }
            if ds.kind == balerfile::header::DatasetKind::Array && ds.shape.len() >= 2 {
                let shape: Vec<String> = ds.shape.iter().map(u64::to_string).collect();
                anyhow::bail!(
                    "{}: {} is a field ({}), and the dense model trains on tables of named columns: train a conv model of the field with --kind conv",
                    input.display(),
                    ds.name(),
                    shape.join(" x ")
                );
            }
            // Every float variable is a feature unless a spec makes it lossless.
            let mut specs = vec![ErrorSpec { variable: None, bound: balerfile::bound::Bound::None }];
            specs.extend(errors);
            let bounds = balerfile::bound::assign(&specs, &layout.datasets)?;
            let feats = balerfile::model::prepare::table_features(ds, &bounds[d]);
            let data = balerfile::model::prepare::sample_rows(source.as_mut(), d, ds, &feats, train_rows, &layout.name, &bar)?;
            let t = Instant::now();
            let mut opts = train.options();
            opts.name.get_or_insert_with(|| ds.name().to_string());
            let trained = balerfile::train::train(&data, &opts, &bar).with_context(|| input.display().to_string())?;
            let store = Store::from_env();
            let id = store_trained(&store, &trained.manifest, &trained.encoder, &trained.decoder, output.as_deref())?;
            let tr = &trained.manifest.provenance["training"];
            println!(
                "trained {} ({} features -> latent {}) on {} rows of {} in {:.1} s ({:.0} rows/s): {} epochs, validation MSE {:.4e}",
                trained.manifest.name,
                trained.manifest.features.len(),
                trained.manifest.latent.size,
                data.rows,
                input.display(),
                t.elapsed().as_secs_f64(),
                tr["rows_per_second"].as_f64().unwrap_or(0.0),
                tr["epochs_run"],
                tr["validation_loss"].as_f64().unwrap_or(f64::NAN),
            );
            print_stored(&id, &store, output.as_deref());
            Ok(())
        }
        Command::Model { command } => model_command(command),
        Command::H5 { command } => h5::run(command, &bar),
        Command::Unpack { input, output, to, datasets, no_coordinates, root_compression, run: RunArgs { threads, quiet }, runtime } => {
            let t = Instant::now();
            let sink = balerfile::io::SinkOptions { root_compression };
            let opts = balerfile::unpack::UnpackOptions { datasets, coordinates: !no_coordinates, threads, runtime: runtime.options(), format: to, sink };
            let report = balerfile::unpack::unpack(&input, &output, &opts, &bar)?;
            if !report.not_written.is_empty() {
                eprintln!(
                    "balerfile: warning: {}: {} ROOT objects carried in the archive are written only to a ROOT output (--to root): {}",
                    output.display(),
                    report.not_written.len(),
                    report.not_written.join(", ")
                );
            }
            for n in &report.notes {
                eprintln!("balerfile: warning: {}: {n}", output.display());
            }
            let raw = report.raw_bytes;
            let secs = t.elapsed().as_secs_f64();
            if quiet {
                return Ok(());
            }
            println!(
                "unpacked {} -> {}: {} in {secs:.2} s ({:.1} MB/s)",
                input.display(),
                output.display(),
                mb(raw),
                raw as f64 / 1e6 / secs.max(1e-9)
            );
            Ok(())
        }
        Command::Eval { original, archive, output, compare, python, bins, run: RunArgs { threads, quiet }, root, runtime } => {
            let opts = balerfile::eval::EvalOptions {
                threads,
                bins: bins as usize,
                root: root.select(),
                runtime: runtime.options(),
                compare_with: compare.then_some(python),
            };
            let s = balerfile::eval::eval(&original, &archive, &output, &opts, &bar)?;
            print_eval(&s, &output, quiet);
            if s.bound_held {
                Ok(())
            } else {
                anyhow::bail!("{}: a variable broke its error bound (see {})", archive.display(), output.join("report.html").display())
            }
        }
        Command::Inspect { file, json } => {
            let ins = balerfile::inspect::inspect(&file)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&ins).context("serialising the inspection")?);
            } else {
                print_inspect(&file, &ins);
            }
            Ok(())
        }
    }
}

/// `--model DIR` names a bundle folder: put it in the store (checked) so `unpack` finds it by id.
fn store_if_folder(what: &str) -> Result<String> {
    let dir = Path::new(what);
    if !dir.join(balerfile::model::MANIFEST_FILE).is_file() {
        return Ok(what.to_string());
    }
    let b = balerfile::model::Bundle::load_dir(dir)?;
    let enc = b.encoder.as_deref().unwrap_or_default();
    Ok(Store::from_env().put(&b.manifest, enc, &b.decoder)?)
}

fn model_command(cmd: ModelCommand) -> Result<()> {
    let store = Store::from_env();
    match cmd {
        ModelCommand::List => {
            let all = store.list()?;
            if all.is_empty() {
                println!("no models in {}", store.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "));
            }
            for m in all {
                let size: u64 = [&m.manifest.encoder.file, &m.manifest.decoder.file]
                    .iter()
                    .filter_map(|f| std::fs::metadata(m.dir.join(f)).ok())
                    .map(|md| md.len())
                    .sum();
                println!(
                    "{}  {:<6} {:>4} features -> latent {:<4} {:>10} bytes  {}{}",
                    m.id,
                    m.manifest.kind,
                    m.manifest.features.len(),
                    m.manifest.latent.size,
                    size,
                    m.manifest.name,
                    if m.intact { "" } else { "  (MODIFIED: folder name is not the manifest's hash)" }
                );
            }
            Ok(())
        }
        ModelCommand::Show { id } => {
            let b = store.resolve(&id)?;
            println!("id: {}", b.id);
            if let Some(d) = &b.dir {
                println!("folder: {}", d.display());
            }
            println!("{}", serde_json::to_string_pretty(&b.manifest)?);
            Ok(())
        }
        ModelCommand::Import { encoder, decoder, features, normalisation, name, runtime } => {
            let rt = runtime.options();
            let manifest = import_manifest(&encoder, &decoder, &features, normalisation.as_deref(), name)?;
            let read = |p: &Path| std::fs::read(p).with_context(|| p.display().to_string());
            let (enc, dec) = (read(&encoder)?, read(&decoder)?);
            // Run both once on zeros, as the codec will: a model that ONNX Runtime rejects or that
            // breaks the contract fails here, not at the first pack.
            let bundle = balerfile::model::Bundle {
                id: manifest.id(),
                manifest: manifest.clone(),
                dir: None,
                encoder: Some(enc.clone()),
                decoder: dec.clone(),
            };
            let loaded = balerfile::model::loaded::LoadedModel::load(bundle, rt, true)?;
            use balerfile::codec::model_stage::LatentModel;
            let f = manifest.features.len();
            let z = loaded.encode(&vec![0.0; 2 * f], 2).map_err(anyhow::Error::msg)?;
            loaded.decode(&z, 2).map_err(anyhow::Error::msg)?;
            let id = store.put(&manifest, &enc, &dec)?;
            println!("imported model {id} ({f} features -> latent {}) into {}", manifest.latent.size, store.primary().display());
            Ok(())
        }
    }
}

/// The manifest of an imported model, from its ONNX files' declared inputs and outputs.
fn import_manifest(
    encoder: &Path,
    decoder: &Path,
    features: &[String],
    normalisation: Option<&Path>,
    name: Option<String>,
) -> Result<balerfile::model::Manifest> {
    use balerfile::model::*;
    use balerfile::onnx::{describe, Dim};
    let f = features.len() as i64;
    // (input name, output name, input width, output width, IR version, opset)
    type Io = (String, String, Option<i64>, Option<i64>, i64, i64);
    let one = |p: &Path, what: &str| -> Result<Io> {
        let bytes = std::fs::read(p).with_context(|| p.display().to_string())?;
        let s = describe(&bytes).with_context(|| p.display().to_string())?;
        let (i, o) = match (s.inputs.as_slice(), s.outputs.as_slice()) {
            ([i], [o]) => (i, o),
            _ => anyhow::bail!("{}: the {what} must have one input and one output, it has {} and {}", p.display(), s.inputs.len(), s.outputs.len()),
        };
        for t in [i, o] {
            if t.elem_type_name != "float32" || t.dims.len() != 2 {
                anyhow::bail!("{}: {what} {} must be float32 [batch, n], it is {} {:?}", p.display(), t.name, t.elem_type_name, t.dims);
            }
        }
        let width = |d: &Dim| if let Dim::Fixed(n) = d { Some(*n) } else { None };
        let opset = s.opsets.iter().find(|(d, _)| d.is_empty() || d == "ai.onnx").map_or(0, |o| o.1);
        Ok((i.name.clone(), o.name.clone(), width(&i.dims[1]), width(&o.dims[1]), s.ir_version, opset))
    };
    let (ei, eo, ein, eout, ir, opset) = one(encoder, "encoder")?;
    let (di, dout_name, din, dout, _, _) = one(decoder, "decoder")?;
    let latent = eout.or(din).ok_or_else(|| anyhow::anyhow!("{}: the latent width is not fixed in either model", encoder.display()))?;
    if ein.is_some_and(|n| n != f) || dout.is_some_and(|n| n != f) {
        anyhow::bail!("{} features given, the encoder takes {:?} and the decoder gives {:?}", f, ein, dout);
    }
    if din.is_some_and(|n| n != latent) {
        anyhow::bail!("the encoder gives {latent} latent values, the decoder takes {:?}", din);
    }
    let norm = match normalisation {
        None => Normalisation { offset: vec![0.0; features.len()], scale: vec![1.0; features.len()] },
        Some(p) => {
            let text = std::fs::read(p).with_context(|| p.display().to_string())?;
            serde_json::from_slice(&text).with_context(|| format!("{}: expected {{\"offset\": [...], \"scale\": [...]}}", p.display()))?
        }
    };
    let sha = |p: &Path| -> Result<String> { Ok(sha256_hex(&std::fs::read(p)?)) };
    let m = Manifest {
        format: MANIFEST_FORMAT.into(),
        format_version: MANIFEST_VERSION,
        kind: "dense".into(),
        name: name.unwrap_or_else(|| "imported".into()),
        features: features.iter().map(|n| Feature::scalar(n.clone(), "f32")).collect(),
        normalisation: norm,
        latent: Latent { size: latent as u64 },
        encoder: OnnxPart { file: "encoder.onnx".into(), sha256: sha(encoder)?, input: ei, output: eo },
        decoder: OnnxPart { file: "decoder.onnx".into(), sha256: sha(decoder)?, input: di, output: dout_name },
        onnx: OnnxInfo { ir_version: ir, opset },
        provenance: serde_json::json!({ "imported": { "encoder": encoder.display().to_string(), "decoder": decoder.display().to_string() } }),
        bcae2d: None,
        conv: None,
    };
    m.validate(encoder)?;
    Ok(m)
}

/// Puts a trained bundle in the store and, with `-o`, writes a copy of it there.
fn store_trained(store: &Store, m: &balerfile::model::Manifest, encoder: &[u8], decoder: &[u8], output: Option<&Path>) -> Result<String> {
    let id = store.put(m, encoder, decoder)?;
    if let Some(dir) = output {
        balerfile::model::Bundle::check_dir_target(dir)?;
        balerfile::model::Bundle::write_dir(m, encoder, decoder, dir)?;
    }
    Ok(id)
}

fn print_stored(id: &str, store: &Store, output: Option<&Path>) {
    println!("model {id} stored in {}", store.primary().display());
    if let Some(dir) = output {
        println!("bundle written to {}", dir.display());
    }
}

#[allow(clippy::too_many_arguments)]
fn train_bcae2d(
    input: &Path,
    source: &mut dyn balerfile::io::Source,
    d: usize,
    layout: &balerfile::io::SourceLayout,
    max_rows: usize,
    train: &TrainArgs,
    args: &ConvNetArgs,
    output: Option<&Path>,
    bar: &Bar,
) -> Result<()> {
    let ds = &layout.datasets[d];
    let wedge: [u64; 3] = match ds.shape.as_slice() {
        [_, c, h, w] => [*c, *h, *w],
        s => anyhow::bail!("{}: dataset {} has shape {s:?}; bcae2d trains on (wedges, layers, height, width)", input.display(), ds.name()),
    };
    let arch = args.arch(wedge);
    let mut opts = args.options(train);
    opts.name.get_or_insert_with(|| ds.name().to_string());
    let data = balerfile::model::prepare::sample_whole_rows(source, d, ds, max_rows, &layout.name, bar)?;
    let t = Instant::now();
    let trained = balerfile::train::bcae2d::train(&data, &arch, &opts, bar)?;
    let store = Store::from_env();
    let id = store_trained(&store, &trained.manifest, &trained.encoder, &trained.decoder, output)?;
    let p = &trained.manifest.provenance;
    let v = &p["validation"];
    println!(
        "trained {} (BCAE-2D(m={}, n={}, d={}), wedge {:?} -> code {:?}, paper ratio {:.3}) on {} wedges of {} in {:.1} s ({:.2} s/epoch, {} epochs)",
        trained.manifest.name,
        arch.encoder_blocks,
        arch.decoder_blocks,
        arch.downsamples,
        arch.wedge,
        arch.code_shape(),
        arch.paper_ratio(),
        data.rows,
        input.display(),
        t.elapsed().as_secs_f64(),
        p["training"]["seconds_per_epoch"].as_f64().unwrap_or(f64::NAN),
        p["training"]["epochs_run"],
    );
    println!(
        "{} ({} wedges): MAE {:.4} (log2 ADC), PSNR {:.2} dB, precision {:.4}, recall {:.4}",
        if v["held_out"] == true { "validation" } else { "a training wedge (too few to hold any out)" },
        v["wedges"],
        v["mae_log_adc"].as_f64().unwrap_or(f64::NAN),
        v["psnr_db"].as_f64().unwrap_or(f64::NAN),
        v["precision"].as_f64().unwrap_or(f64::NAN),
        v["recall"].as_f64().unwrap_or(f64::NAN),
    );
    print_stored(&id, &store, output);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn train_conv(
    input: &Path,
    source: &mut dyn balerfile::io::Source,
    d: usize,
    layout: &balerfile::io::SourceLayout,
    max_rows: usize,
    train: &TrainArgs,
    args: &ConvNetArgs,
    output: Option<&Path>,
    bar: &Bar,
) -> Result<()> {
    let ds = &layout.datasets[d];
    let dtypes: Vec<String> = ds.variables.iter().map(|v| v.dtype.to_string()).collect();
    if ds.shape.len() < 3 || ds.variables.len() != 1 || !ds.variables[0].dtype.is_float() {
        anyhow::bail!(
            "{}: dataset {} is {} of shape {:?}; conv trains on one float field of 3 or more axes (e.g. time, lat, lon), its last two the image",
            input.display(),
            ds.name(),
            dtypes.join(", "),
            ds.shape
        );
    }
    let arch = args.conv_arch(ds.shape[1..].to_vec());
    let mut opts = args.conv_options(train);
    opts.name.get_or_insert_with(|| ds.name().to_string());
    let data = balerfile::model::prepare::sample_whole_rows(source, d, ds, max_rows, &layout.name, bar)?;
    let t = Instant::now();
    let trained = balerfile::train::conv::train(&data, &arch, &opts, bar)?;
    let store = Store::from_env();
    let id = store_trained(&store, &trained.manifest, &trained.encoder, &trained.decoder, output)?;
    let p = &trained.manifest.provenance;
    println!(
        "trained {} (conv, tiles {b} x {b} -> code {:?}, {:.0} values per code value) on {} rows ({} tiles) of {} in {:.1} s: {} epochs, validation RMS error {:.4e} ({} units)",
        trained.manifest.name,
        arch.code_shape(),
        p["architecture"]["values_per_code_value"].as_f64().unwrap_or(f64::NAN),
        data.rows,
        p["training"]["tiles"],
        input.display(),
        t.elapsed().as_secs_f64(),
        p["training"]["epochs_run"],
        p["validation"]["rms_error"].as_f64().unwrap_or(f64::NAN),
        ds.name(),
        b = arch.block,
    );
    print_stored(&id, &store, output);
    Ok(())
}

/// Warns about what the input holds that the archive does not keep: one line per object, except
/// netCDF's dimension links (object-reference attributes on every variable), which are one line.
fn warn_skipped(input: &Path, skipped: &[balerfile::header::Skipped]) {
    let is_link = |s: &&balerfile::header::Skipped| s.is_dimension_link();
    let links: Vec<&str> = skipped.iter().filter(is_link).map(|s| s.path.split(" attribute ").next().unwrap_or("")).collect();
    if !links.is_empty() {
        eprintln!(
            "balerfile: warning: {}: the netCDF dimension links (DIMENSION_LIST/REFERENCE_LIST attributes) of {} datasets are not \
             stored as such; unpack re-attaches them from the dimension ids (netCDF-4's _Netcdf4Coordinates, or the \
             _Netcdf4Dimid of the scales they link to), and where neither is there netCDF readers match those datasets' \
             dimensions by length (values, coordinates and other attributes are kept)",
            input.display(),
            links.len()
        );
    }
    for s in skipped.iter().filter(|s| !is_link(s)) {
        eprintln!("balerfile: warning: {}: skipped {}: {}", input.display(), s.path, s.reason);
    }
}

/// The width of a table's name column: the longest name, so long names keep the columns aligned.
fn name_width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names.map(|n| n.chars().count()).max().unwrap_or(0).max(8)
}

/// The ratios with and without the decoders, in words that hold for both places a decoder can
/// be: kept outside (the model store: `external` bytes the archive needs) or embedded
/// (`embedded` bytes of the archive; the coded data alone is the archive less them).
fn ratio_line(raw: u64, archive: u64, embedded: u64, external: u64) -> String {
    let of = |d: u64| if d > 0 { raw as f64 / d as f64 } else { 0.0 };
    let (alone, with) = (of(archive.saturating_sub(embedded)), of(archive + external));
    match (embedded, external) {
        (0, x) => format!("ratio {alone:.2} without the decoder, {with:.2} with it ({x} bytes of decoder and manifest outside the archive)"),
        (e, 0) => format!("ratio {alone:.2} without the decoder, {with:.2} with it ({e} bytes of decoder embedded)"),
        (e, x) => format!("ratio {alone:.2} without the decoders, {with:.2} with them ({e} bytes of decoder embedded, {x} outside the archive)"),
    }
}

/// "P% of raw, ratio R", or, for an archive of no array data (every branch skipped, objects
/// carried), that there is none: a percentage of nothing is not a number.
fn share_of_raw(raw: u64, archive: u64) -> String {
    if raw == 0 {
        return "no array data: no ratio".into();
    }
    format!("{:.2}% of raw, ratio {:.2}", 100.0 * archive as f64 / raw as f64, raw as f64 / archive.max(1) as f64)
}

fn print_pack(input: &Path, output: &Path, r: &PackReport, secs: f64, quiet: bool) {
    println!(
        "packed {} -> {}: {} -> {} ({}) in {secs:.2} s ({:.1} MB/s), {} chunks",
        input.display(),
        output.display(),
        mb(r.raw_bytes),
        mb(r.archive_bytes),
        share_of_raw(r.raw_bytes, r.archive_bytes),
        r.raw_bytes as f64 / 1e6 / secs.max(1e-9),
        r.chunks
    );
    for (m, &n) in r.models.iter().zip(&r.model_chunks) {
        let place = if m.embedded.is_some() { "embedded" } else { "referenced, kept outside the archive" };
        println!("model {} ({}, decoder and manifest {} bytes, {place})", m.id, m.name, m.decoder_bytes);
        if n == 0 {
            let embedded = if m.embedded.is_some() {
                format!("; its embedded decoder and manifest ({} bytes) are in the archive for nothing (pack without --embed-model to leave them out)", m.decoder_bytes)
            } else {
                String::new()
            };
            println!("model {} not used: no chunk kept its latent (it made no chunk smaller; lossless variables never use it); the archive unpacks without it{embedded}", &m.id[..12]);
        }
    }
    if !r.models.is_empty() {
        println!("{}; latent {} bytes", ratio_line(r.raw_bytes, r.archive_bytes, r.embedded_bytes, r.decoder_bytes), r.latent_bytes);
    }
    let lossy: Vec<_> = r.variables.iter().filter_map(|v| v.tolerance.map(|t| (v, v.max_error / t))).collect();
    let unbounded = r.variables.iter().filter(|v| v.bound == "none").count();
    if unbounded > 0 {
        println!("{unbounded} variables are the model's output with no bound (--error none): see their errors below");
    }
    match lossy.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        Some((v, ratio)) => println!(
            "max error: {:.4e} on {} ({:.1}% of its bound); {} lossy variables, {} lossless",
            v.max_error,
            v.name,
            100.0 * ratio,
            lossy.len(),
            r.variables.len() - lossy.len()
        ),
        None if unbounded == 0 => println!("max error: 0 (all {} variables lossless)", r.variables.len()),
        None => {}
    }
    for v in r.variables.iter().filter(|v| v.missing > 0) {
        println!(
            "{}: {} missing elements kept exactly and left out of its range and errors: {}",
            v.name,
            v.missing,
            v.missing_rule.as_deref().unwrap_or("")
        );
    }
    for s in &r.sparse_scores {
        println!(
            "{} through the model alone (the BCAE-2D paper's metrics, on log2(ADC + 1)): MAE {:.4}, PSNR {:.2} dB, precision {:.4}, recall {:.4}",
            s.dataset, s.mae, s.psnr_db, s.precision, s.recall
        );
        print!("{}: code ratio {:.3} the paper's way (input and code as 16-bit values)", s.dataset, s.paper_ratio);
        if s.code_bytes > 0 {
            println!("; the entropy-coded code is {} bytes for {} raw: ratio {:.2}", s.code_bytes, s.raw_bytes, s.raw_bytes as f64 / s.code_bytes as f64);
        } else {
            println!("; no chunk kept the code (the residual alone was smaller)");
        }
    }
    if quiet {
        return;
    }
    let w = name_width(r.variables.iter().map(|v| v.name.as_str()));
    println!(
        "{:<w$} {:>5} {:>26} {:>10} {:>10} {:>7} {:>11} {:>11} {:>10} {:>10} {:>6} {:>6}",
        "variable", "dtype", "bound", "raw", "packed", "% raw", "max error", "mean |err|", "resp mean", "resp RMS", "exact", "model"
    );
    for v in &r.variables {
        let e = v.errors.unwrap_or_default();
        println!(
            "{:<w$} {:>5} {:>26} {:>10} {:>10} {:>7.2} {:>11.4e} {:>11.4e} {:>10.3e} {:>10.3e} {:>6} {:>6}",
            v.name,
            v.dtype,
            v.bound,
            v.raw_bytes,
            v.packed_bytes,
            100.0 * v.packed_bytes as f64 / v.raw_bytes.max(1) as f64,
            v.max_error,
            e.mean_abs_error,
            e.response_mean,
            e.response_rms,
            v.outliers,
            v.model_chunks
        );
    }
}

fn print_eval(s: &balerfile::eval::Summary, out: &Path, quiet: bool) {
    println!(
        "{} vs {}: {} raw bytes -> {} archive bytes (ratio {:.3}; {:.3} with {} bytes of decoder); every bound held: {}",
        s.archive,
        s.original,
        s.raw_bytes,
        s.archive_bytes,
        s.ratio,
        s.ratio_with_decoder,
        s.decoder_bytes,
        if s.bound_held { "yes" } else { "NO" }
    );
    if !quiet {
        for ds in &s.datasets {
            println!("{} {:?}", ds.path, ds.shape);
            let w = name_width(ds.variables.iter().map(|v| v.name.as_str()));
            println!(
                "  {:<w$} {:<5} {:<26} {:>10} {:>9} {:>10} {:>10} {:>10} {:>10}  held",
                "variable", "dtype", "bound", "max|err|", "max/bound", "res mean", "res RMS", "resp mean", "resp RMS"
            );
            for v in &ds.variables {
                let st = &v.stats;
                println!(
                    "  {:<w$} {:<5} {:<26} {:>10.3e} {:>9} {:>10.3e} {:>10.3e} {:>10.3e} {:>10.3e}  {}",
                    v.name,
                    v.dtype,
                    v.bound,
                    st.max_abs_error,
                    v.tolerance.map(|t| format!("{:.4}", st.max_abs_error / t)).unwrap_or_else(|| "-".into()),
                    st.residual.mean,
                    st.residual.rms,
                    st.response.moments.mean,
                    st.response.moments.rms,
                    match st.bound_held {
                        Some(true) => "yes",
                        Some(false) => "NO",
                        None => "-",
                    }
                );
            }
        }
    }
    if let Some(c) = &s.compare {
        for p in &c.peers {
            match (p.available, p.bytes) {
                (true, Some(b)) => println!(
                    "peer {:<5} {b} bytes ({:.2} % of raw), bound held: {}",
                    p.peer,
                    p.percent_of_raw.unwrap_or(0.0),
                    p.bound_held.map_or("-", |h| if h { "yes" } else { "NO" })
                ),
                _ => println!("peer {:<5} not run: {}", p.peer, p.why.as_deref().unwrap_or("a variable failed (see summary.json)")),
            }
        }
    }
    println!("report: {}", out.join("report.html").display());
}

fn print_inspect(file: &Path, ins: &balerfile::inspect::Inspection) {
    let h = &ins.header;
    println!("{}: .baler format {} written by {} {}", file.display(), h.format_version, h.producer.name, h.producer.version);
    println!("source: {} ({:?})", h.source.name, h.source.kind);
    println!(
        "size: {} bytes for {} raw ({}), {} chunks",
        ins.archive_bytes,
        ins.raw_bytes,
        share_of_raw(ins.raw_bytes, ins.archive_bytes),
        ins.chunks
    );
    let stages: Vec<String> = h
        .codec
        .pipeline
        .iter()
        .map(|s| s.level.map_or(s.stage.clone(), |l| format!("{}(level {l})", s.stage)))
        .collect();
    println!("codec: {}", stages.join(" -> "));
    if h.models.is_empty() {
        println!("model: none");
    }
    let store = Store::from_env();
    for (m, &n) in h.models.iter().zip(&ins.model_chunks) {
        let place = match (n, m.embedded.is_some()) {
            (0, _) => "used by no chunk: not needed to unpack".to_string(),
            (n, true) => format!("embedded, used by {n} chunks"),
            (n, false) if store.get(&m.id).is_ok() => format!("in the model store, used by {n} chunks"),
            (n, false) => format!("used by {n} chunks and NOT in the model store here ({}): unpack needs it", store.searched()),
        };
        println!("model: {} ({}, {}, decoder and manifest {} bytes, {place})", m.id, m.name, m.kind, m.decoder_bytes);
    }
    if !h.models.is_empty() {
        println!("{}; latent {} bytes", ratio_line(ins.raw_bytes, ins.archive_bytes, ins.embedded_bytes, ins.decoder_bytes), ins.latent_bytes);
    }
    let w = name_width(ins.variables.iter().map(|v| v.name.as_str()));
    println!(
        "{:<w$} {:>5} {:>14} {:>26} {:>10} {:>10} {:>7} {:>11} {:>11} {:>10} {:>10}",
        "variable", "dtype", "shape", "bound", "raw", "packed", "% raw", "max error", "mean |err|", "resp mean", "resp RMS"
    );
    for v in &ins.variables {
        let e = v.errors.unwrap_or_default();
        println!(
            "{:<w$} {:>5} {:>14} {:>26} {:>10} {:>10} {:>7.2} {:>11.4e} {:>11.4e} {:>10.3e} {:>10.3e}",
            v.name,
            v.dtype,
            format!("{:?}", v.shape),
            v.bound,
            v.raw_bytes,
            v.packed_bytes,
            v.percent_of_raw,
            e.max_abs_error,
            e.mean_abs_error,
            e.response_mean,
            e.response_rms
        );
    }
    let mut carried: std::collections::BTreeMap<&str, usize> = Default::default();
    for o in h.root_objects.iter().filter(|o| o.kind != balerfile::header::RootObjectKind::Streamers) {
        *carried.entry(o.class.as_str()).or_default() += 1;
    }
    if !carried.is_empty() {
        let list: Vec<String> = carried.iter().map(|(c, n)| format!("{n} {c}")).collect();
        println!("carried unchanged (written back by unpack --to root): {}", list.join(", "));
    }
    for s in &h.skipped {
        println!("not packed: {}: {}", s.path, s.reason);
    }
}
