//! Hot loops compiled a second time, for the CPU they run on.
//!
//! Every release targets the x86-64 baseline: there `u64::leading_zeros` compiles to `bsr`, a
//! shift by a variable count goes through `cl`, and a loop is vectorised two f64 at a time.
//! LZCNT, BMI2 and AVX2 (x86-64-v3: Intel's cores since Haswell, AMD's since Excavator) do
//! better, but none can be assumed (some Pentium, Celeron and Atom parts lack them), and a CPU
//! without LZCNT runs it as `bsr` and gets another answer. On AMD's Zen 1 and 2, where many HPC
//! nodes sit, `bsr` issues one every four cycles, and the loops that take a bit length or more
//! an element (the estimates that price predictors, `rans`'s tokens, `ac`'s buckets) ran at
//! that rate; the encoder's interpolation walk codes its batches four elements a vector with
//! AVX2. `tuned` runs such a loop compiled for all three where the CPU has them (std's check,
//! made once a process), as zstd's `_bmi2` twins do. The results are the same to the bit: the
//! same IEEE operations in the same order (Rust never fuses or reorders float arithmetic,
//! whatever the target), integers exact.

/// `f()`, compiled with AVX2, BMI2 and LZCNT where the CPU has them. `f` must be the loop's
/// whole body, inlined (`#[inline(always)]` on the closure and what it calls): a function it
/// calls out of line keeps the baseline's instructions.
#[inline(always)]
pub fn tuned<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(test)]
    if BASELINE.get() {
        return f();
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("bmi2") && std::arch::is_x86_feature_detected!("lzcnt") {
        // SAFETY: `with_v3` may only run where the CPU has AVX2, BMI2 and LZCNT, checked on the
        // line above; it has no other requirement.
        return unsafe { with_v3(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi2,lzcnt")]
#[inline]
unsafe fn with_v3<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
thread_local! {
    static BASELINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `f()` with every `tuned` loop it runs on this thread taking the baseline's instructions, for
/// tests that compare the twins with them on a CPU that has the features.
#[cfg(test)]
pub fn baseline<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            BASELINE.set(false);
        }
    }
    BASELINE.set(true);
    let _reset = Reset;
    f()
}
