//! The instruction sets the kernels use, chosen once per process: detected on the CPU,
//! or narrowed by the environment variable `OMG_KERNELS_ISA` (see the crate docs) to run
//! the code paths of older CPUs on a newer one. Every run-time feature check of the
//! kernels goes through [`isa`].

use std::sync::OnceLock;

/// The environment variable that narrows the instruction sets.
pub(crate) const VARIABLE: &str = "OMG_KERNELS_ISA";

/// The values [`VARIABLE`] takes, as the messages list them.
const VALUES: &str = "native, portable, avx2, no-f16c (unset or empty = native)";

/// The instruction sets the kernels may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Isa {
    /// AVX2 and FMA: the `multiversion!` copies compiled for them run.
    pub(crate) avx2_fma: bool,
    /// F16C as well (never without `avx2_fma`): half weights are widened in registers.
    pub(crate) f16c: bool,
    /// AVX-512 (F, BW) with VNNI as well (never without `f16c`): the quantized products
    /// multiply bytes with `vpdpbusd`.
    pub(crate) avx512_vnni: bool,
}

impl Isa {
    /// The baseline copies only.
    const PORTABLE: Self = Self {
        avx2_fma: false,
        f16c: false,
        avx512_vnni: false,
    };

    /// What this CPU has.
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2_fma =
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            let f16c = avx2_fma && std::is_x86_feature_detected!("f16c");
            Self {
                avx2_fma,
                f16c,
                avx512_vnni: f16c
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vnni"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self::PORTABLE
        }
    }

    /// `avx512-vnni+avx2+fma+f16c`, `avx2+fma+f16c`, `avx2+fma` or `portable`.
    pub(crate) fn name(self) -> &'static str {
        match (self.avx2_fma, self.f16c, self.avx512_vnni) {
            (true, true, true) => "avx512-vnni+avx2+fma+f16c",
            (true, true, false) => "avx2+fma+f16c",
            (true, false, _) => "avx2+fma",
            (false, _, _) => "portable",
        }
    }
}

/// The instruction sets for the value of [`VARIABLE`] on a CPU with `detected`.
fn parse(value: Option<&str>, detected: Isa) -> Result<Isa, String> {
    match value.map(str::trim) {
        None | Some("") | Some("native") => Ok(detected),
        Some("portable") => Ok(Isa::PORTABLE),
        Some("avx2") => Ok(Isa {
            avx512_vnni: false,
            ..detected
        }),
        // no CPU with AVX-512 lacks F16C: the older CPU this stands for has neither
        Some("no-f16c") => Ok(Isa {
            f16c: false,
            avx512_vnni: false,
            ..detected
        }),
        Some(other) => Err(format!(
            "{VARIABLE}={other:?} is not a known value; expected one of: {VALUES}"
        )),
    }
}

/// The instruction sets of this process (read and detected on the first call).
///
/// # Panics
/// If [`VARIABLE`] has a value other than those listed in the crate docs.
pub(crate) fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let value = std::env::var_os(VARIABLE);
        let value = value.as_ref().map(|v| v.to_str().unwrap_or("<not UTF-8>"));
        parse(value, Isa::detect()).unwrap_or_else(|message| panic!("omg-kernels: {message}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Isa = Isa {
        avx2_fma: true,
        f16c: true,
        avx512_vnni: true,
    };

    #[test]
    fn the_values_narrow_what_the_cpu_has() {
        assert_eq!(parse(None, ALL), Ok(ALL));
        assert_eq!(parse(Some(""), ALL), Ok(ALL));
        assert_eq!(parse(Some("native"), ALL), Ok(ALL));
        assert_eq!(parse(Some("portable"), ALL), Ok(Isa::PORTABLE));
        let no_f16c = parse(Some("no-f16c"), ALL).unwrap();
        assert_eq!(
            (no_f16c.avx2_fma, no_f16c.f16c, no_f16c.avx512_vnni),
            (true, false, false)
        );
        let avx2 = parse(Some("avx2"), ALL).unwrap();
        assert_eq!(
            (avx2.avx2_fma, avx2.f16c, avx2.avx512_vnni),
            (true, true, false)
        );
        assert_eq!(avx2.name(), "avx2+fma+f16c");
        assert_eq!(parse(Some("avx2"), Isa::PORTABLE), Ok(Isa::PORTABLE));
        // never more than the CPU has
        assert_eq!(parse(Some("no-f16c"), Isa::PORTABLE), Ok(Isa::PORTABLE));
        assert_eq!(parse(Some("native"), Isa::PORTABLE), Ok(Isa::PORTABLE));
    }

    #[test]
    fn an_unknown_value_is_an_error_listing_the_known_ones() {
        let e = parse(Some("avx512"), ALL).unwrap_err();
        assert!(
            e.contains("\"avx512\"") && e.contains("portable, avx2, no-f16c"),
            "{e}"
        );
    }

    #[test]
    fn f16c_is_never_used_without_avx2() {
        let isa = Isa::detect();
        assert!(!isa.f16c || isa.avx2_fma);
        assert!(!isa.avx512_vnni || isa.f16c);
        assert_eq!(Isa::PORTABLE.name(), "portable");
    }
}
