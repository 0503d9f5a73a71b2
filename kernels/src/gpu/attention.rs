//! GPU attention kernels (being written).
