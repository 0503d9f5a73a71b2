//! Cache sizes of this CPU, read with CPUID, with sane defaults where CPUID says nothing.

/// Per-core data cache capacities in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// L1 data cache of one core.
    pub l1d: usize,
    /// L2 cache of one core.
    pub l2: usize,
    /// This core's share of the last-level cache (total size over the cores sharing it).
    pub l3_per_core: usize,
}

impl CacheSizes {
    /// Used when CPUID gives no cache description (non-x86 targets, odd hypervisors).
    pub const DEFAULT: CacheSizes = CacheSizes {
        l1d: 32 * 1024,
        l2: 512 * 1024,
        l3_per_core: 2 * 1024 * 1024,
    };

    /// Reads this CPU's caches once (CPUID leaf 4 on Intel, 0x8000001D on AMD).
    pub fn detect() -> CacheSizes {
        static SIZES: std::sync::OnceLock<CacheSizes> = std::sync::OnceLock::new();
        *SIZES.get_or_init(|| detect_cpuid().unwrap_or(CacheSizes::DEFAULT))
    }
}

#[cfg(target_arch = "x86_64")]
fn detect_cpuid() -> Option<CacheSizes> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // CPUID exists on every x86_64 CPU; leaves are only read after checking the maximum.
    let (max_basic, max_ext) = (__cpuid(0).eax, __cpuid(0x8000_0000).eax);
    let leaf = if max_ext >= 0x8000_001D {
        0x8000_001D
    } else if max_basic >= 4 {
        4
    } else {
        return None;
    };
    let mut sizes = CacheSizes {
        l1d: 0,
        l2: 0,
        l3_per_core: 0,
    };
    for sub in 0..16 {
        let r = __cpuid_count(leaf, sub);
        let kind = r.eax & 0x1f;
        if kind == 0 {
            break;
        }
        let level = (r.eax >> 5) & 0x7;
        let sharing = ((r.eax >> 14) & 0xfff) as usize + 1;
        let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
        let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
        let line = (r.ebx & 0xfff) as usize + 1;
        let sets = r.ecx as usize + 1;
        let size = ways * partitions * line * sets;
        match (level, kind) {
            (1, 1) => sizes.l1d = size,
            (2, 1) | (2, 3) => sizes.l2 = size,
            (3, 1) | (3, 3) => sizes.l3_per_core = size / sharing.clamp(1, 64),
            _ => {}
        }
    }
    let plausible = |v: usize, lo: usize, hi: usize| (lo..=hi).contains(&v);
    if !plausible(sizes.l1d, 8 << 10, 1 << 20) || !plausible(sizes.l2, 64 << 10, 64 << 20) {
        return None;
    }
    if !plausible(sizes.l3_per_core, 256 << 10, 1 << 30) {
        sizes.l3_per_core = CacheSizes::DEFAULT.l3_per_core;
    }
    Some(sizes)
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_cpuid() -> Option<CacheSizes> {
    None
}
