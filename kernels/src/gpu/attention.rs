//! GPU multi-head attention (`kernels/cuda/attention.cu`), FlashAttention-2 style, with the
//! conventions and numerics of [`crate::cpu::attention`]: `q`, `k`, `v` and the output are
//! `[B, T, H*d]` row-major, the optional mask is `[B, T]` additive per key, and the logits are
//! `fma(scale, q.k, mask)` as on the CPU.
//!
//! No `T x T` matrix reaches global memory. The forward keeps a query tile in shared memory,
//! streams key/value tiles through it with an online softmax (running max and sum per row)
//! and writes the output and the row statistics ([`lse_len`]). The backward recomputes the
//! probabilities from those statistics: one kernel computes `Dvec = rowsum(dO * O)`, one
//! (parallel over key tiles) `dK` and `dV`, one (parallel over query tiles) `dQ`; every value
//! is written by one thread, without atomics, so results are the same bits on every run.
//!
//! Blocks have 128 threads; tiles depend on the head dimension (`BQ` query rows, `BK` key
//! rows), all in static shared memory under 48 KiB:
//!
//! | `d` | forward `BQ x BK` | dK/dV `BQ x BK` | dQ `BQ x BK` | shared bytes (fwd, dK/dV, dQ) |
//! |---|---|---|---|---|
//! | 32 | 64 x 64 | 32 x 64 | 64 x 32 | 45056, 46464, 36864 |
//! | 64 | 64 x 32 | 32 x 32 | 32 x 32 | 44032, 44416, 39424 |
//! | 128 | 32 x 16 | 8 x 32 | 32 x 8 | 36352, 45408, 43776 |
//!
//! Forward and backward come in two builds ([`Products`]): FP32 FMAs as above, and a
//! tensor-core one (`kernels/cuda/attention_mma.cu`: `mma.sync` on TF32 operands, each
//! product made of three to keep FP32 accuracy; blocks of 64 rows, streamed tiles of 64 rows
//! at d 32, 32 at d 64 and 16 at d 128, the dK/dV kernel's query tiles 64 at d 32 and 16 at
//! d 64 and 128; the `Dvec` kernel is `attention.cu`'s). Both save the same statistics, so the backward of
//! either build can follow the forward of the other. The same tensor-core kernels also come
//! with bf16 storage ([`attention_forward_bf16`], [`attention_backward_bf16`]), whose
//! products need fewer tensor-core passes (a bf16 value is a TF32 value).
//!
//! A row whose keys are all masked behaves as on the CPU: with a finite mask such as
//! `f32::MIN` every logit rounds to the same value and the row averages `v` uniformly; with
//! `-inf` its output (and its gradients) are zero.

use super::{
    check_lens_of, distinct_outputs, Dtype, GpuBuffer, GpuDevice, KernelArg, LaunchConfig,
    PtxModule,
};
use crate::cpu::attention::AttentionShape;
use crate::{Error, Result};

/// The attention kernels, compiled from `kernels/cuda/attention.cu`.
pub const MODULE: PtxModule = PtxModule {
    name: "attention",
    ptx: include_str!("../../ptx/attention.ptx"),
};

/// The tensor-core kernels (f32 and bf16 storage), compiled from
/// `kernels/cuda/attention_mma.cu`.
pub const MMA_MODULE: PtxModule = PtxModule {
    name: "attention_mma",
    ptx: include_str!("../../ptx/attention_mma.ptx"),
};

/// How [`attention_forward`] and [`attention_backward`] compute their tile products
/// (`Q K^T`, `P V`; in the backward also `dO V^T`, `P^T dO`, `dS K`, `dS^T Q`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Products {
    /// FP32 FMAs (`attention.cu`).
    Fma,
    /// Tensor cores (`mma.sync` m16n8k8 on TF32, `attention_mma.cu`): each operand split
    /// into two TF32 values and each product made of three tensor-core products (3xTF32),
    /// which keeps FP32 accuracy (about 2^-22 of each product).
    Tf32x3,
}

impl Products {
    /// The builds of the kernels made for head dim `head_dim`: both at [`HEAD_DIMS`], none
    /// at any other.
    pub fn builds(head_dim: usize) -> &'static [Products] {
        if HEAD_DIMS.contains(&head_dim) {
            &[Products::Fma, Products::Tf32x3]
        } else {
            &[]
        }
    }

    /// Where this build's kernels for `shape` are, or [`Error::Unsupported`] for a head dim
    /// it is not made for.
    fn kernels(self, op: &'static str, shape: &AttentionShape) -> Result<Kernels> {
        let d = shape.head_dim;
        let what = match self {
            Products::Fma => "the FMA",
            Products::Tf32x3 => "the tensor-core (3xTF32)",
        };
        supported(op, shape, what)?;
        let (module, suffix, tiles) = match self {
            Products::Fma => (MODULE, format!("d{d}"), Tiles::fma(d)),
            Products::Tf32x3 => (MMA_MODULE, format!("mma_d{d}"), Tiles::mma()),
        };
        Ok(Kernels {
            module,
            suffix,
            tiles,
            dtype: Dtype::F32,
            dvec: (MODULE, "attention_backward_dvec"),
        })
    }
}

/// Where the kernels of one [`Products`] build and head dim are: `attention_forward_{suffix}`,
/// `attention_backward_dkdv_{suffix}` and `attention_backward_dq_{suffix}` in `module`, with
/// the rows of their blocks.
struct Kernels {
    module: PtxModule,
    suffix: String,
    tiles: Tiles,
    /// What `q`, `k`, `v`, `out`, `dout` and the gradients hold.
    dtype: Dtype,
    /// The backward's `Dvec` kernel for that storage.
    dvec: (PtxModule, &'static str),
}

impl Kernels {
    /// The bf16-storage build (tensor cores) at `shape`'s head dim, or
    /// [`Error::Unsupported`].
    fn bf16(op: &'static str, shape: &AttentionShape) -> Result<Kernels> {
        supported(op, shape, "the bf16")?;
        let d = shape.head_dim;
        Ok(Kernels {
            module: MMA_MODULE,
            suffix: format!("mma_bf16_d{d}"),
            tiles: Tiles::mma(),
            dtype: Dtype::Bf16,
            dvec: (MMA_MODULE, "attention_backward_dvec_bf16"),
        })
    }
}

/// The head dims every build of the kernels is made for.
pub const HEAD_DIMS: [usize; 3] = [32, 64, 128];

/// `Ok` when `shape`'s head dim is one of [`HEAD_DIMS`], else [`Error::Unsupported`] naming
/// `op`, the shape and `what` kernels were asked for.
fn supported(op: &'static str, shape: &AttentionShape, what: &str) -> Result<()> {
    let d = shape.head_dim;
    if HEAD_DIMS.contains(&d) {
        return Ok(());
    }
    let dims: Vec<String> = HEAD_DIMS.iter().map(|d| d.to_string()).collect();
    Err(Error::Unsupported {
        op,
        detail: format!(
            "head_dim {d} ({}): {what} kernels are built for head_dim {}",
            describe(shape),
            dims.join(", ")
        ),
    })
}

/// Threads of every block (`NT` in the source).
const THREADS: u32 = 128;
/// Rows of the `Dvec` kernel's block: one warp each.
const DVEC_ROWS: usize = THREADS as usize / 32;
/// Rows per block of every tensor-core kernel (`BR` in `attention_mma.cu`).
const MMA_ROWS: usize = 64;
/// The most blocks along grid y (heads) and z (batch).
const MAX_GRID_YZ: usize = 65535;

/// Rows per block of the kernels for one head dimension (for the FMA build, the
/// `ATTENTION_KERNELS` table of its source): the forward's query tile, the dK/dV kernel's key
/// tile, the dQ kernel's query tile.
struct Tiles {
    forward_rows: usize,
    dkdv_rows: usize,
    dq_rows: usize,
}

impl Tiles {
    /// The tensor-core kernels' tiles: [`MMA_ROWS`] rows per block in all three.
    fn mma() -> Tiles {
        Tiles {
            forward_rows: MMA_ROWS,
            dkdv_rows: MMA_ROWS,
            dq_rows: MMA_ROWS,
        }
    }

    /// The FMA kernels' tiles for head dim `d` (32, 64 or 128: [`Products::builds`]).
    fn fma(d: usize) -> Tiles {
        let (forward_rows, dkdv_rows, dq_rows) = match d {
            32 => (64, 64, 64),
            64 => (64, 32, 32),
            _ => (32, 32, 32),
        };
        Tiles {
            forward_rows,
            dkdv_rows,
            dq_rows,
        }
    }
}

/// Length of the statistics buffer (`lse`) of [`attention_forward`] and
/// [`attention_backward`]: `[3, B, H, T]` f32 values. Plane 0 holds each row's maximum logit
/// `m`, plane 1 `ln(sum_j exp(s_j - m))`, so the row's logsumexp is their sum (kept apart so
/// that a padded row with logits near `f32::MIN` keeps its precision); plane 2 is scratch for
/// the backward's `rowsum(dO * O)`.
pub fn lse_len(shape: &AttentionShape) -> usize {
    3 * shape.batch * shape.heads * shape.seq
}

/// `out = softmax(scale * Q K^T + mask) V` per batch element and head, as
/// [`crate::cpu::attention::attention_forward`], plus the row statistics `lse` the backward
/// needs, with its tile products made as `products` says.
///
/// `q`, `k`, `v` and `out` hold `[B, T, H*d]` values, `mask` (additive per key) `[B, T]`,
/// `lse` [`lse_len`] values. Errors: [`Error::Unsupported`] when `head_dim` is not 32, 64 or
/// 128 or the shape exceeds the grid and `i32` limits,
/// [`Error::Shape`] when a buffer is too short, [`Error::Overlap`] when an output is also
/// another argument.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(
    dev: &mut dyn GpuDevice,
    products: Products,
    q: GpuBuffer,
    k: GpuBuffer,
    v: GpuBuffer,
    mask: Option<GpuBuffer>,
    scale: f32,
    shape: &AttentionShape,
    out: GpuBuffer,
    lse: GpuBuffer,
) -> Result<()> {
    const OP: &str = "gpu_attention_forward";
    let kernels = products.kernels(OP, shape)?;
    forward(dev, OP, kernels, [q, k, v], mask, scale, shape, out, lse)
}

/// [`attention_forward`] with `q`, `k`, `v` and `out` stored as bf16 (`[B, T, H*d]` bf16
/// values; `mask` and `lse` stay f32), on tensor cores at head dims 32, 64 and 128. A bf16 value is
/// a TF32 value, so `Q K^T` takes one TF32 product per tile where f32 storage takes three,
/// and `P V` two; everything else is f32 and `out` is rounded to nearest even. Errors as
/// [`attention_forward`], and [`Error::Dtype`] for a buffer of f32 where bf16 is read.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward_bf16(
    dev: &mut dyn GpuDevice,
    q: GpuBuffer,
    k: GpuBuffer,
    v: GpuBuffer,
    mask: Option<GpuBuffer>,
    scale: f32,
    shape: &AttentionShape,
    out: GpuBuffer,
    lse: GpuBuffer,
) -> Result<()> {
    const OP: &str = "gpu_attention_forward_bf16";
    let kernels = Kernels::bf16(OP, shape)?;
    forward(dev, OP, kernels, [q, k, v], mask, scale, shape, out, lse)
}

/// The forward of either storage: checks, then one launch of `kernels`' forward.
#[allow(clippy::too_many_arguments)]
fn forward(
    dev: &mut dyn GpuDevice,
    op: &'static str,
    kernels: Kernels,
    [q, k, v]: [GpuBuffer; 3],
    mask: Option<GpuBuffer>,
    scale: f32,
    shape: &AttentionShape,
    out: GpuBuffer,
    lse: GpuBuffer,
) -> Result<()> {
    let tensors = [("q", q), ("k", k), ("v", v), ("out", out)];
    let seq = check_call(&*dev, op, shape, kernels.dtype, &tensors, lse, mask)?;
    let mut inputs = vec![("q", q), ("k", k), ("v", v)];
    inputs.extend(mask.map(|m| ("mask", m)));
    distinct_outputs(op, &[("out", out), ("lse", lse)], &inputs)?;
    if shape.qkv_len() == 0 {
        return Ok(());
    }
    let mut args = common_args(q, k, v, mask, scale, seq);
    args.extend([KernelArg::Buf(out), KernelArg::Buf(lse)]);
    let cfg = tile_grid(shape, kernels.tiles.forward_rows);
    let name = format!("attention_forward_{}", kernels.suffix);
    // SAFETY: `check_call` checked every buffer against the shape and the storage, and the
    // arguments are the kernel's parameters in order (the same for every forward kernel).
    unsafe { dev.launch(kernels.module, &name, cfg, &args) }
}

/// Gradients of [`attention_forward`]: `dq`, `dk`, `dv` (`[B, T, H*d]`, overwritten) from the
/// inputs, the forward's `out` and `lse`, and the output gradient `dout`, as
/// [`crate::cpu::attention::attention_backward`]. The mask gets no gradient; keys masked
/// with `-inf` get none either (with `f32::MIN`, a fully masked row averages every key, and
/// they get its share, as on the CPU).
///
/// Plane 2 of `lse` is overwritten (scratch, see [`lse_len`]); planes 0 and 1 are kept. Errors
/// as [`attention_forward`], with `lse` counted as an output.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    dev: &mut dyn GpuDevice,
    products: Products,
    q: GpuBuffer,
    k: GpuBuffer,
    v: GpuBuffer,
    mask: Option<GpuBuffer>,
    scale: f32,
    shape: &AttentionShape,
    out: GpuBuffer,
    lse: GpuBuffer,
    dout: GpuBuffer,
    dq: GpuBuffer,
    dk: GpuBuffer,
    dv: GpuBuffer,
) -> Result<()> {
    const OP: &str = "gpu_attention_backward";
    let kernels = products.kernels(OP, shape)?;
    let grads = [dq, dk, dv];
    backward(
        dev,
        OP,
        kernels,
        [q, k, v],
        mask,
        scale,
        shape,
        [out, lse, dout],
        grads,
    )
}

/// [`attention_backward`] with `q`, `k`, `v`, `out`, `dout`, `dq`, `dk` and `dv` stored as
/// bf16 (those of [`attention_forward_bf16`]; `mask` and `lse` f32), on tensor cores at head
/// dims 32, 64 and 128. Products with bf16 operands (`Q K^T`, `dO V^T`, their transposes) take one
/// TF32 product per tile, those of f32 probabilities with bf16 tiles two; the gradients are
/// accumulated in f32 and rounded to nearest even once. Errors as
/// [`attention_forward_bf16`].
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_bf16(
    dev: &mut dyn GpuDevice,
    q: GpuBuffer,
    k: GpuBuffer,
    v: GpuBuffer,
    mask: Option<GpuBuffer>,
    scale: f32,
    shape: &AttentionShape,
    out: GpuBuffer,
    lse: GpuBuffer,
    dout: GpuBuffer,
    dq: GpuBuffer,
    dk: GpuBuffer,
    dv: GpuBuffer,
) -> Result<()> {
    const OP: &str = "gpu_attention_backward_bf16";
    let kernels = Kernels::bf16(OP, shape)?;
    let grads = [dq, dk, dv];
    backward(
        dev,
        OP,
        kernels,
        [q, k, v],
        mask,
        scale,
        shape,
        [out, lse, dout],
        grads,
    )
}

/// The backward of either storage: checks, then the `Dvec`, dK/dV and dQ launches.
#[allow(clippy::too_many_arguments)]
fn backward(
    dev: &mut dyn GpuDevice,
    op: &'static str,
    kernels: Kernels,
    [q, k, v]: [GpuBuffer; 3],
    mask: Option<GpuBuffer>,
    scale: f32,
    shape: &AttentionShape,
    [out, lse, dout]: [GpuBuffer; 3],
    [dq, dk, dv]: [GpuBuffer; 3],
) -> Result<()> {
    let tensors = [
        ("q", q),
        ("k", k),
        ("v", v),
        ("out", out),
        ("dout", dout),
        ("dq", dq),
        ("dk", dk),
        ("dv", dv),
    ];
    let seq = check_call(&*dev, op, shape, kernels.dtype, &tensors, lse, mask)?;
    let mut inputs = vec![("q", q), ("k", k), ("v", v), ("out", out), ("dout", dout)];
    inputs.extend(mask.map(|m| ("mask", m)));
    let outputs = [("dq", dq), ("dk", dk), ("dv", dv), ("lse", lse)];
    distinct_outputs(op, &outputs, &inputs)?;
    if shape.qkv_len() == 0 {
        return Ok(());
    }

    // Dvec = rowsum(dO * O) into plane 2 of lse: one warp per (b, t, h) row.
    let rows = shape.batch * shape.seq * shape.heads;
    let cfg = LaunchConfig {
        grid: [rows.div_ceil(DVEC_ROWS) as u32, 1, 1],
        block: [THREADS, 1, 1],
        shared_bytes: 0,
    };
    let dvec_args = [
        KernelArg::Buf(out),
        KernelArg::Buf(dout),
        KernelArg::Buf(lse),
        KernelArg::I32(seq),
        KernelArg::I32(shape.heads as i32),
        KernelArg::I32(shape.head_dim as i32),
        KernelArg::I32(rows as i32),
    ];
    let (dvec_module, dvec) = kernels.dvec;
    // SAFETY (this launch and the two below): `check_call` covered every buffer against the
    // shape and the storage, and each argument list is its kernel's parameters in order.
    unsafe { dev.launch(dvec_module, dvec, cfg, &dvec_args)? };

    let mut args = common_args(q, k, v, mask, scale, seq);
    args.extend([KernelArg::Buf(dout), KernelArg::Buf(lse)]);
    let mut dkdv_args = args.clone();
    dkdv_args.extend([KernelArg::Buf(dk), KernelArg::Buf(dv)]);
    let (module, suffix) = (kernels.module, &kernels.suffix);
    let cfg = tile_grid(shape, kernels.tiles.dkdv_rows);
    let dkdv = format!("attention_backward_dkdv_{suffix}");
    unsafe { dev.launch(module, &dkdv, cfg, &dkdv_args)? };
    args.push(KernelArg::Buf(dq));
    let cfg = tile_grid(shape, kernels.tiles.dq_rows);
    let dq_kernel = format!("attention_backward_dq_{suffix}");
    unsafe { dev.launch(module, &dq_kernel, cfg, &args) }
}

/// The checks every launcher makes: the kernels take `shape` ([`check_shape`]), `dev` made
/// every buffer, each of `tensors` holds `[B, T, H*d]` values of `dtype`, `lse` [`lse_len`]
/// f32 values and `mask` `[B, T]`. Returns the sequence length as the kernels' `int`.
fn check_call(
    dev: &dyn GpuDevice,
    op: &'static str,
    shape: &AttentionShape,
    dtype: Dtype,
    tensors: &[(&str, GpuBuffer)],
    lse: GpuBuffer,
    mask: Option<GpuBuffer>,
) -> Result<i32> {
    let seq = check_shape(op, shape)?;
    for &(name, buf) in tensors {
        check(dev, op, shape, dtype, name, buf, shape.qkv_len())?;
    }
    check(dev, op, shape, Dtype::F32, "lse", lse, lse_len(shape))?;
    if let Some(m) = mask {
        check(
            dev,
            op,
            shape,
            Dtype::F32,
            "mask",
            m,
            shape.batch * shape.seq,
        )?;
    }
    Ok(seq)
}

/// The arguments every tile kernel starts with: `q, k, v, mask, has_mask, scale, T` (without a
/// mask, `q` stands in for its pointer and is never read as one).
fn common_args(
    q: GpuBuffer,
    k: GpuBuffer,
    v: GpuBuffer,
    mask: Option<GpuBuffer>,
    scale: f32,
    seq: i32,
) -> Vec<KernelArg> {
    vec![
        KernelArg::Buf(q),
        KernelArg::Buf(k),
        KernelArg::Buf(v),
        KernelArg::Buf(mask.unwrap_or(q)),
        KernelArg::I32(i32::from(mask.is_some())),
        KernelArg::F32(scale),
        KernelArg::I32(seq),
    ]
}

/// A grid of `ceil(T / rows)` tiles by heads by batch elements of 128-thread blocks.
fn tile_grid(shape: &AttentionShape, rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid: [
            shape.seq.div_ceil(rows) as u32,
            shape.heads as u32,
            shape.batch as u32,
        ],
        block: [THREADS, 1, 1],
        shared_bytes: 0,
    }
}

/// `batch B x seq T x heads H x head_dim d`, for messages.
fn describe(shape: &AttentionShape) -> String {
    format!(
        "batch {} x seq {} x heads {} x head_dim {}",
        shape.batch, shape.seq, shape.heads, shape.head_dim
    )
}

/// The sequence length as the kernels' `int`, or [`Error::Unsupported`] when the shape exceeds
/// what the grid (`H`, `B` at most 65535) and the kernels' 32-bit indices (`3*B*H*T` values of
/// `lse`) can address.
fn check_shape(op: &'static str, shape: &AttentionShape) -> Result<i32> {
    // 3*B*H*T multiplied checked: with B and H up to 65535 it can overflow usize.
    let lse_values = [shape.heads, shape.seq, 3]
        .into_iter()
        .try_fold(shape.batch, usize::checked_mul);
    let fits = shape.batch <= MAX_GRID_YZ
        && shape.heads <= MAX_GRID_YZ
        && lse_values.is_some_and(|n| i32::try_from(n).is_ok());
    match i32::try_from(shape.seq) {
        Ok(seq) if fits => Ok(seq),
        _ => Err(Error::Unsupported {
            op,
            detail: format!(
                "{}: batch and heads must be at most {MAX_GRID_YZ} and 3 x batch x heads x seq at most {}",
                describe(shape),
                i32::MAX
            ),
        }),
    }
}

/// [`check_lens_of`] of one buffer holding `elems` values of `dtype`, with the shape in the
/// message.
fn check(
    dev: &dyn GpuDevice,
    op: &'static str,
    shape: &AttentionShape,
    dtype: Dtype,
    name: &str,
    buf: GpuBuffer,
    elems: usize,
) -> Result<()> {
    check_lens_of(dev, op, &|| describe(shape), dtype, &[(name, buf, elems)])
}
