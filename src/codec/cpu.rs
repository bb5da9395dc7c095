//! Hot loops compiled a second time, for the CPU they run on.
//!
//! Every release targets the x86-64 baseline, where `u64::leading_zeros` compiles to `bsr` and a
//! shift by a variable count must go through `cl`. LZCNT does the first in one cycle and BMI2's
//! `shlx`/`shrx` the second from any register, but neither can be assumed: a CPU without LZCNT
//! runs it as `bsr` and gets another answer. On AMD's Zen 1 and 2, where many HPC nodes sit,
//! `bsr` issues one every four cycles, and the loops that take a bit length or more an element
//! (the estimates that price predictors, `rans`'s tokens, `ac`'s buckets) ran at that rate.
//! `bits` runs such a loop compiled with both where the CPU has them (std's check, made once a
//! process): the same results from other instructions, as zstd's `_bmi2` twins do.

/// `f()`, compiled with LZCNT and BMI2 where the CPU has both. `f` must be the loop's whole body,
/// inlined (`#[inline(always)]` on the closure and what it calls): a function it calls out of
/// line keeps the baseline's instructions.
#[inline(always)]
pub fn bits<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("lzcnt") && std::arch::is_x86_feature_detected!("bmi2") {
        // SAFETY: `with_lzcnt_bmi2` may only run where the CPU has LZCNT and BMI2, checked on
        // the line above; it has no other requirement.
        return unsafe { with_lzcnt_bmi2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "lzcnt,bmi2")]
#[inline]
unsafe fn with_lzcnt_bmi2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
