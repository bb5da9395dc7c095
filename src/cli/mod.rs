//! The `balerfile` command line. Library errors become one line on stderr and exit code 1.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use balerfile::bound::ErrorSpec;
use balerfile::pack::{PackOptions, PackReport};
use balerfile::progress::Progress;

#[derive(Parser)]
#[command(name = "balerfile", version, about = "Error-bounded compression of scientific data into .baler archives")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compress an HDF5 file (all numeric datasets, or those named) or a .npy file into a .baler archive.
    Pack {
        /// HDF5 (.h5, .nc, ...) or .npy file.
        input: PathBuf,
        /// The archive to write (replaced atomically if it exists).
        #[arg(short, long)]
        output: PathBuf,
        /// Pack only this dataset (repeatable); default: every numeric dataset.
        #[arg(short, long = "dataset", value_name = "NAME")]
        datasets: Vec<String>,
        /// Error bound: rel=E (E times the variable's value range), abs=E, lossless, or
        /// VARIABLE:SPEC for one variable, dataset or compound field (repeatable; later wins).
        /// Default: lossless. Integer and bool variables are always lossless.
        #[arg(short, long = "error", value_name = "SPEC")]
        errors: Vec<ErrorSpec>,
        /// Raw bytes per chunk, e.g. 4M, 512K (chunks are coded independently and in parallel).
        #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_size)]
        chunk_size: u64,
        /// zstd level of the entropy stage (1-22).
        #[arg(long, default_value_t = balerfile::pack::DEFAULT_LEVEL, value_parser = clap::value_parser!(i32).range(1..=22))]
        level: i32,
        /// Worker threads; default: all cores.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Print one summary line instead of the per-variable table.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Decompress a .baler archive into HDF5 (.h5) or .npy.
    Unpack {
        input: PathBuf,
        /// Output file: .h5 (every dataset, with groups and attributes) or .npy (one dataset).
        #[arg(short, long)]
        output: PathBuf,
        /// Unpack only this dataset (repeatable).
        #[arg(short, long = "dataset", value_name = "NAME")]
        datasets: Vec<String>,
        /// Worker threads; default: all cores.
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Show what an archive holds: datasets, variables, bounds, sizes and ratio.
    Inspect {
        file: PathBuf,
        /// Print JSON (with the full header) instead of a table.
        #[arg(long)]
        json: bool,
    },
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

fn dispatch(cmd: Command) -> Result<()> {
    let bar = Bar(Mutex::new(None));
    match cmd {
        Command::Pack { input, output, datasets, errors, chunk_size, level, threads, quiet } => {
            let t = Instant::now();
            let mut source = balerfile::io::open_source(&input, &datasets)?;
            let opts = PackOptions { errors, chunk_bytes: chunk_size, level, threads };
            let report = balerfile::pack::pack(source.as_mut(), &output, &opts, &bar)?;
            for s in &report.skipped {
                eprintln!("balerfile: warning: {}: skipped {}: {}", input.display(), s.path, s.reason);
            }
            print_pack(&input, &output, &report, t.elapsed().as_secs_f64(), quiet);
            Ok(())
        }
        Command::Unpack { input, output, datasets, threads } => {
            let t = Instant::now();
            let opts = balerfile::unpack::UnpackOptions { datasets, threads };
            let raw = balerfile::unpack::unpack(&input, &output, &opts, &bar)?;
            let secs = t.elapsed().as_secs_f64();
            println!(
                "unpacked {} -> {}: {} in {secs:.2} s ({:.1} MB/s)",
                input.display(),
                output.display(),
                mb(raw),
                raw as f64 / 1e6 / secs.max(1e-9)
            );
            Ok(())
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

fn print_pack(input: &Path, output: &Path, r: &PackReport, secs: f64, quiet: bool) {
    let pct = 100.0 * r.archive_bytes as f64 / r.raw_bytes.max(1) as f64;
    println!(
        "packed {} -> {}: {} -> {} ({pct:.2}% of raw, ratio {:.2}) in {secs:.2} s ({:.1} MB/s), {} chunks",
        input.display(),
        output.display(),
        mb(r.raw_bytes),
        mb(r.archive_bytes),
        r.raw_bytes as f64 / r.archive_bytes.max(1) as f64,
        r.raw_bytes as f64 / 1e6 / secs.max(1e-9),
        r.chunks
    );
    let lossy: Vec<_> = r.variables.iter().filter_map(|v| v.tolerance.map(|t| (v, v.max_error / t))).collect();
    match lossy.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        Some((v, ratio)) => println!(
            "max error: {:.4e} on {} ({:.1}% of its bound); {} lossy variables, {} lossless",
            v.max_error,
            v.name,
            100.0 * ratio,
            lossy.len(),
            r.variables.len() - lossy.len()
        ),
        None => println!("max error: 0 (all {} variables lossless)", r.variables.len()),
    }
    if quiet {
        return;
    }
    println!("{:<40} {:>5} {:>28} {:>12} {:>12} {:>8} {:>12} {:>8}", "variable", "dtype", "bound", "raw", "packed", "% raw", "max error", "exact");
    for v in &r.variables {
        println!(
            "{:<40} {:>5} {:>28} {:>12} {:>12} {:>8.2} {:>12.4e} {:>8}",
            v.name,
            v.dtype,
            v.bound,
            v.raw_bytes,
            v.packed_bytes,
            100.0 * v.packed_bytes as f64 / v.raw_bytes.max(1) as f64,
            v.max_error,
            v.outliers
        );
    }
}

fn print_inspect(file: &Path, ins: &balerfile::inspect::Inspection) {
    let h = &ins.header;
    println!("{}: .baler format {} written by {} {}", file.display(), h.format_version, h.producer.name, h.producer.version);
    println!("source: {} ({:?})", h.source.name, h.source.kind);
    println!(
        "size: {} bytes for {} raw ({:.2}% of raw, ratio {:.2}), {} chunks",
        ins.archive_bytes,
        ins.raw_bytes,
        100.0 / ins.ratio.max(1e-12),
        ins.ratio,
        ins.chunks
    );
    let stages: Vec<String> = h
        .codec
        .pipeline
        .iter()
        .map(|s| s.level.map_or(s.stage.clone(), |l| format!("{}(level {l})", s.stage)))
        .collect();
    println!("codec: {}", stages.join(" -> "));
    println!("model: {}", h.model.as_ref().map_or("none".to_string(), |m| m.to_string()));
    println!("{:<40} {:>5} {:>16} {:>28} {:>12} {:>12} {:>8}", "variable", "dtype", "shape", "bound", "raw", "packed", "% raw");
    for v in &ins.variables {
        println!(
            "{:<40} {:>5} {:>16} {:>28} {:>12} {:>12} {:>8.2}",
            v.name,
            v.dtype,
            format!("{:?}", v.shape),
            v.bound,
            v.raw_bytes,
            v.packed_bytes,
            v.percent_of_raw
        );
    }
    for s in &h.skipped {
        println!("not packed: {}: {}", s.path, s.reason);
    }
}
