//! Which vector instruction set the hand-written kernels use: the best the CPU has, detected once,
//! optionally capped by the `SMIRL_SIMD` environment variable (`avx512`, `avx2` or `portable`), so
//! that an AVX2-only machine can be emulated on an AVX-512 one and every path can be tested.

use std::sync::OnceLock;

/// The environment variable that caps [`level`].
pub const ENV: &str = "SMIRL_SIMD";

/// A kernel path, ordered from the most portable to the widest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Baseline x86-64 (SSE2) or another architecture: whatever the compiler makes of plain loops.
    Portable,
    /// AVX2 + FMA, 8 f32 lanes.
    Avx2,
    /// AVX-512 F/BW/DQ/VL (x86-64-v4) + FMA, 16 f32 lanes.
    Avx512,
}

impl SimdLevel {
    /// Every level, narrowest first.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512];

    /// The name `SMIRL_SIMD` takes.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// Parses a `SMIRL_SIMD` value.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" => Ok(SimdLevel::Portable),
            "avx2" => Ok(SimdLevel::Avx2),
            "avx512" => Ok(SimdLevel::Avx512),
            other => Err(format!("{ENV}={other:?}: expected avx512, avx2 or portable")),
        }
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The widest level this CPU runs (detected once).
pub fn detected() -> SimdLevel {
    static DETECTED: OnceLock<SimdLevel> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

fn detect() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") && has!("fma") {
            return SimdLevel::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Portable
}

/// The level `SMIRL_SIMD` asks for: `Ok(None)` when unset, an error naming the variable when the
/// value is unknown or asks for more than the CPU has.
pub fn requested() -> Result<Option<SimdLevel>, String> {
    match std::env::var(ENV) {
        Err(_) => Ok(None),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => {
            let want = SimdLevel::parse(&v)?;
            let cpu = detected();
            if want > cpu {
                return Err(format!("{ENV}={want}: this CPU runs at most {cpu}"));
            }
            Ok(Some(want))
        }
    }
}

/// The level the kernels use: [`detected`], capped by `SMIRL_SIMD` when that is valid (an invalid
/// value is ignored here; the CLI reports it through [`requested`] before any work starts).
pub fn level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| requested().ok().flatten().unwrap_or_else(detected))
}

/// The levels this CPU can run, narrowest first: what a test of every path iterates over.
pub fn available() -> impl Iterator<Item = SimdLevel> {
    let cpu = detected();
    SimdLevel::ALL.into_iter().filter(move |l| *l <= cpu)
}

/// For tests of every path: says on stderr which paths this CPU cannot run, and so were not
/// checked by `what`.
pub fn note_skipped(what: &str) {
    for l in SimdLevel::ALL.into_iter().filter(|l| *l > detected()) {
        eprintln!("{what}: the {l} path is not checked (this CPU lacks it)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order() {
        for l in SimdLevel::ALL {
            assert_eq!(SimdLevel::parse(l.name()), Ok(l));
        }
        assert_eq!(SimdLevel::parse(" AVX2 "), Ok(SimdLevel::Avx2));
        assert!(SimdLevel::parse("sse4").unwrap_err().contains("SMIRL_SIMD"));
        assert!(SimdLevel::Portable < SimdLevel::Avx2 && SimdLevel::Avx2 < SimdLevel::Avx512);
    }

    #[test]
    fn level_never_exceeds_the_cpu() {
        assert!(level() <= detected());
        assert!(available().any(|l| l == SimdLevel::Portable));
        assert_eq!(available().last(), Some(detected()));
    }
}
