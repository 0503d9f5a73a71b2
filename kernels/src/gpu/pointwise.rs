//! GPU pointwise kernels (being written).
