//! GPU layernorm kernels (being written).
