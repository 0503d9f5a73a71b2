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

/// Tries the cache leaf this CPU's vendor documents first, then the other: AMD describes its
/// caches in 0x8000001D (leaf 4 is reserved there), Intel in leaf 4, while 0x8000001D reads
/// as zeros on Intel even where a hypervisor reports extended leaves that far.
#[cfg(target_arch = "x86_64")]
fn detect_cpuid() -> Option<CacheSizes> {
    cache_leaves().find_map(read_cache_leaf)
}

/// The cache leaves this CPU reports (4 and 0x8000001D, each only if the CPU's maximum leaf
/// reaches it), in the order [`detect_cpuid`] tries them.
#[cfg(target_arch = "x86_64")]
fn cache_leaves() -> impl Iterator<Item = u32> {
    use std::arch::x86_64::__cpuid;
    // CPUID exists on every x86_64 CPU; leaves are only read after checking the maximum.
    let basic = __cpuid(0);
    let max_ext = __cpuid(0x8000_0000).eax;
    // "AuthenticAMD" and "HygonGenuine" (AMD's design licensed in China).
    let amd = matches!(basic.ebx, 0x6874_7541 | 0x6f67_7948);
    let order: [u32; 2] = if amd {
        [0x8000_001D, 4]
    } else {
        [4, 0x8000_001D]
    };
    let present = move |leaf: &u32| match leaf {
        4 => basic.eax >= 4,
        _ => max_ext >= 0x8000_001D,
    };
    order.into_iter().filter(present)
}

/// The caches described by CPUID `leaf` (4 or 0x8000001D, which share a layout), or `None`
/// when L1d or L2 is missing or implausible.
#[cfg(target_arch = "x86_64")]
fn read_cache_leaf(leaf: u32) -> Option<CacheSizes> {
    use std::arch::x86_64::__cpuid_count;
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
        // Absurd fields (a hypervisor's) can overflow; the plausibility check below then
        // falls back to the defaults.
        let size = [partitions, line, sets]
            .iter()
            .try_fold(ways, |acc, &f| acc.checked_mul(f))
            .unwrap_or(0);
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

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn detection_finds_the_caches_whichever_leaf_describes_them() {
        // Intel VMs may report extended leaves up to 0x80000021 with 0x8000001D all zeros:
        // detection must still read leaf 4 there (it fell back to the defaults before).
        let described = cache_leaves().any(|leaf| read_cache_leaf(leaf).is_some());
        let detected = detect_cpuid();
        assert_eq!(detected.is_some(), described, "{detected:?}");
        assert_eq!(
            CacheSizes::detect(),
            detected.unwrap_or(CacheSizes::DEFAULT)
        );
    }
}
