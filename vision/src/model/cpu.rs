//! The instruction sets tract's kernels can use on this machine, for benchmark tables and
//! the startup log: the same model runs at very different speeds with and without them.

/// E.g. `x86_64: AVX2 + FMA + AVX-512F (TRACT_CPU_ISA unset)`.
pub fn instruction_sets() -> String {
    let setting = std::env::var("TRACT_CPU_ISA").map_or_else(
        |_| "TRACT_CPU_ISA unset".to_owned(),
        |v| format!("TRACT_CPU_ISA={v}"),
    );
    format!(
        "{}: {} ({setting})",
        std::env::consts::ARCH,
        detected().join(" + ")
    )
}

#[cfg(target_arch = "x86_64")]
fn detected() -> Vec<&'static str> {
    let mut found = Vec::new();
    if std::arch::is_x86_feature_detected!("avx2") {
        found.push("AVX2");
    }
    if std::arch::is_x86_feature_detected!("fma") {
        found.push("FMA");
    }
    if std::arch::is_x86_feature_detected!("avx512f") {
        found.push("AVX-512F");
    }
    if found.is_empty() {
        found.push("SSE only");
    }
    found
}

#[cfg(target_arch = "aarch64")]
fn detected() -> Vec<&'static str> {
    if std::arch::is_aarch64_feature_detected!("fp16") {
        vec!["NEON", "FP16"]
    } else {
        vec!["NEON"]
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detected() -> Vec<&'static str> {
    vec!["generic kernels"]
}
