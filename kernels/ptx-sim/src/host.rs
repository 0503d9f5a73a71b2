//! The host side: modules, device buffers, typed kernel arguments and launches.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::decode::{build_program, module_data, ModuleData, Program};
use crate::error::{Result, SimError};
use crate::exec::{self, LaunchCtx};
use crate::inst::Ty;
use crate::memory::{GlobalMem, MODULE_GLOBALS, MODULE_WINDOW, MODULE_WINDOWS};
use crate::parse::parse_module;

/// Largest shared memory of one block on sm_80 and later (227 KiB).
pub const MAX_SHARED_BYTES: u32 = 227 * 1024;
/// Most threads in one block.
pub const MAX_THREADS_PER_BLOCK: u32 = 1024;

static NEXT_MODULE: AtomicU64 = AtomicU64::new(0);
static NEXT_SIM: AtomicU64 = AtomicU64::new(0);

/// A parsed PTX module: its kernels decoded and ready to launch.
#[derive(Clone, Debug)]
pub struct Module {
    id: u64,
    data: ModuleData,
    /// Each entry and its program, or why it cannot run (an unsupported instruction).
    kernels: Vec<(String, Result<Program>)>,
}

impl Module {
    /// Parses PTX text as NVRTC emits it. Malformed text is an error naming the line; a kernel
    /// using an instruction the simulator does not run fails when launched (and in `check`).
    pub fn parse(text: &str) -> Result<Module> {
        Module::parse_as(text, NEXT_MODULE.fetch_add(1, Ordering::Relaxed))
    }

    /// Parses `text` as the module numbered `id`.
    fn parse_as(text: &str, id: u64) -> Result<Module> {
        let ast = parse_module(text)?;
        let window = MODULE_GLOBALS + (id % MODULE_WINDOWS) * MODULE_WINDOW;
        let data = module_data(&ast, window)?;
        let kernels = ast
            .functions
            .iter()
            .filter(|f| f.is_entry)
            .map(|f| {
                (
                    f.name.clone(),
                    build_program(&ast, &data, &f.name).map_err(|e| e.in_kernel(&f.name)),
                )
            })
            .collect();
        Ok(Module { id, data, kernels })
    }

    /// Names of the kernels (`.entry`) in the module.
    pub fn kernels(&self) -> Vec<&str> {
        self.kernels.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Fails with the first kernel that uses something the simulator cannot run.
    pub fn check(&self) -> Result<()> {
        self.kernels
            .iter()
            .try_for_each(|(_, p)| p.as_ref().map(|_| ()).map_err(Clone::clone))
    }

    fn program(&self, name: &str) -> Result<&Program> {
        match self.kernels.iter().find(|(n, _)| n == name) {
            Some((_, p)) => p.as_ref().map_err(Clone::clone),
            None if self.kernels.is_empty() => Err(SimError::launch(format!(
                "no kernel named {name:?}: the module has no kernels (no .entry)"
            ))),
            None => Err(SimError::launch(format!(
                "no kernel named {name:?} in the module (it has: {})",
                self.kernels().join(", ")
            ))),
        }
    }
}

/// Grid or block dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dim3 {
    /// Extent along x.
    pub x: u32,
    /// Extent along y.
    pub y: u32,
    /// Extent along z.
    pub z: u32,
}

impl Dim3 {
    /// `(x, y, z)`.
    pub fn new(x: u32, y: u32, z: u32) -> Dim3 {
        Dim3 { x, y, z }
    }

    /// `(x, 1, 1)`.
    pub fn x(x: u32) -> Dim3 {
        Dim3::new(x, 1, 1)
    }

    /// `(x, y, 1)`.
    pub fn xy(x: u32, y: u32) -> Dim3 {
        Dim3::new(x, y, 1)
    }

    fn array(self) -> [u32; 3] {
        [self.x, self.y, self.z]
    }
}

/// The configuration of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Blocks in the grid.
    pub grid: Dim3,
    /// Threads in a block.
    pub block: Dim3,
    /// Dynamic shared memory per block, in bytes (`.extern .shared` arrays).
    pub shared_bytes: u32,
}

/// A device buffer of a `Sim`: its address and length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    sim: u64,
    addr: u64,
    len: usize,
}

impl Buffer {
    /// Device address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A kernel argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    /// A pointer to a device buffer (a `.u64`/`.b64`/`.s64` parameter).
    Ptr(Buffer),
    /// A 32-bit unsigned integer.
    U32(u32),
    /// A 32-bit signed integer.
    I32(i32),
    /// A 64-bit unsigned integer.
    U64(u64),
    /// A 64-bit signed integer.
    I64(i64),
    /// A float.
    F32(f32),
    /// A double.
    F64(f64),
}

impl Arg {
    /// Little-endian bytes and whether the value is a float.
    fn bytes(&self) -> (Vec<u8>, bool) {
        match *self {
            Arg::Ptr(b) => (b.addr.to_le_bytes().to_vec(), false),
            Arg::U32(v) => (v.to_le_bytes().to_vec(), false),
            Arg::I32(v) => (v.to_le_bytes().to_vec(), false),
            Arg::U64(v) => (v.to_le_bytes().to_vec(), false),
            Arg::I64(v) => (v.to_le_bytes().to_vec(), false),
            Arg::F32(v) => (v.to_le_bytes().to_vec(), true),
            Arg::F64(v) => (v.to_le_bytes().to_vec(), true),
        }
    }
}

/// What a launch reports when it succeeds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Thread-instructions executed (each warp instruction counts once per active thread).
    pub instructions: u64,
    /// Warnings: registers read before any write, shuffles from lanes that do not take part.
    pub warnings: Vec<String>,
}

/// A simulated device: global memory that persists across launches, and the launcher.
#[derive(Debug)]
pub struct Sim {
    id: u64,
    global: GlobalMem,
    /// The module whose `.global` variables each window holds.
    windows: HashMap<u64, u64>,
    limit: u64,
    approx_ulps: u32,
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Sim {
    /// An empty device. A launch stops with an error after 10^11 thread-instructions.
    pub fn new() -> Sim {
        Sim {
            id: NEXT_SIM.fetch_add(1, Ordering::Relaxed),
            global: GlobalMem::default(),
            windows: HashMap::new(),
            limit: 100_000_000_000,
            approx_ulps: 0,
        }
    }

    /// Sets the most thread-instructions one launch may run before it is stopped as endless;
    /// each block's setup counts too (a thread, and 64 bytes of shared memory cleared, one
    /// instruction each).
    pub fn set_instruction_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// Makes every f32 `.approx` result (`ex2`, `lg2`, `rcp`, `rsqrt`, `sqrt`, `sin`, `cos`,
    /// `tanh`, `div`) `ulps` units in the last place off, up or down by the operand's hash,
    /// instead of correctly rounded: at the hardware's documented error (`ex2.approx`: 2 ulp)
    /// a test shows that a kernel's tolerance holds on a GPU too. Exactly defined cases (zero,
    /// infinite or NaN operands and results) stay exact. Default 0.
    pub fn set_approx_error(&mut self, ulps: u32) {
        self.approx_ulps = ulps;
    }

    /// A new buffer holding `bytes`.
    pub fn upload_bytes(&mut self, bytes: &[u8]) -> Buffer {
        Buffer {
            sim: self.id,
            addr: self.global.alloc(bytes.to_vec()),
            len: bytes.len(),
        }
    }

    /// A new buffer holding `values` (little-endian f32).
    pub fn upload_f32(&mut self, values: &[f32]) -> Buffer {
        self.upload_bytes(
            &values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        )
    }

    /// A new buffer holding `values` (little-endian u32).
    pub fn upload_u32(&mut self, values: &[u32]) -> Buffer {
        self.upload_bytes(
            &values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        )
    }

    /// A new zeroed buffer of `bytes` bytes.
    pub fn zeros(&mut self, bytes: usize) -> Buffer {
        Buffer {
            sim: self.id,
            addr: self.global.alloc(vec![0; bytes]),
            len: bytes,
        }
    }

    /// Frees a buffer: its memory goes back to the host, and a launch that still reaches its
    /// addresses (never reused) reads out of bounds. An error when the buffer is not a live
    /// one of this simulator (freed already, or another simulator's).
    pub fn free(&mut self, buf: Buffer) -> Result<()> {
        if buf.sim != self.id || !self.global.remove(buf.addr) {
            return Err(SimError::launch(format!(
                "cannot free the {}-byte buffer at {:#x}: not a live buffer of this simulator",
                buf.len, buf.addr
            )));
        }
        Ok(())
    }

    /// The bytes of a buffer. Panics if the buffer was not made by this simulator.
    pub fn read_bytes(&self, buf: Buffer) -> Vec<u8> {
        match self
            .global
            .allocation(buf.addr)
            .filter(|_| buf.sim == self.id)
        {
            Some(b) => b.to_vec(),
            None => panic!(
                "buffer at {:#x} does not belong to this simulator",
                buf.addr
            ),
        }
    }

    /// Overwrites a buffer with `bytes` (as many as it holds). An error when the buffer is not
    /// from this simulator or the lengths differ.
    pub fn write_bytes(&mut self, buf: Buffer, bytes: &[u8]) -> Result<()> {
        if buf.sim != self.id || bytes.len() != buf.len {
            return Err(SimError::launch(format!(
                "cannot write {} bytes into the {}-byte buffer at {:#x} (of this simulator: {})",
                bytes.len(),
                buf.len,
                buf.addr,
                buf.sim == self.id
            )));
        }
        self.global
            .bytes_mut(buf.addr, buf.len as u64)?
            .copy_from_slice(bytes);
        Ok(())
    }

    /// A buffer's contents as f32 values.
    pub fn read_f32(&self, buf: Buffer) -> Vec<f32> {
        self.read_bytes(buf)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// A buffer's contents as u32 values.
    pub fn read_u32(&self, buf: Buffer) -> Vec<u32> {
        self.read_bytes(buf)
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// A buffer's contents as i32 values.
    pub fn read_i32(&self, buf: Buffer) -> Vec<i32> {
        self.read_u32(buf).into_iter().map(|v| v as i32).collect()
    }

    /// Runs kernel `name` of `module` over the grid. Errors name the kernel and, for checks
    /// that fail while it runs, the block, thread, PTX line and address.
    pub fn launch(
        &mut self,
        module: &Module,
        name: &str,
        launch: Launch,
        args: &[Arg],
    ) -> Result<Report> {
        let prog = module.program(name)?;
        let fail = |msg: String| SimError::launch(msg).in_kernel(name);
        check_dims(launch).map_err(fail)?;
        check_bounds(prog, launch.block.array()).map_err(fail)?;
        if prog.shared_bytes(launch.shared_bytes) > MAX_SHARED_BYTES as u64 {
            return Err(fail(format!(
                "{} bytes of static and {} of dynamic shared memory exceed the {MAX_SHARED_BYTES} a block may have",
                prog.static_shared, launch.shared_bytes
            )));
        }
        if args.len() != prog.params.len() {
            return Err(fail(format!(
                "{name} takes {} arguments, {} were given",
                prog.params.len(),
                args.len()
            )));
        }
        let mut params = vec![0u8; prog.param_bytes as usize];
        for (i, (arg, p)) in args.iter().zip(&prog.params).enumerate() {
            let (bytes, is_float) = arg.bytes();
            let fits = bytes.len() == p.size as usize
                && match p.ty {
                    Ty::F32 | Ty::F64 => is_float,
                    Ty::U(_) | Ty::S(_) => !is_float,
                    _ => true,
                };
            if !fits {
                return Err(fail(format!(
                    "argument {i} ({arg:?}) does not fit parameter {} of type {:?} ({} bytes)",
                    p.name, p.ty, p.size
                )));
            }
            if let Arg::Ptr(b) = arg {
                if b.sim != self.id || !self.global.contains(b.addr) {
                    return Err(fail(format!(
                        "argument {i} points to a buffer that is not in this simulator"
                    )));
                }
            }
            params[p.offset as usize..(p.offset + p.size) as usize].copy_from_slice(&bytes);
        }
        self.load(module).map_err(fail)?;
        let ctx = LaunchCtx {
            prog,
            consts: &module.data.consts,
            params: &params,
            grid: launch.grid.array(),
            block: launch.block.array(),
            dynamic_shared: launch.shared_bytes,
            limit: self.limit,
            approx_ulps: self.approx_ulps,
        };
        let out = exec::run(&ctx, &mut self.global).map_err(|e| e.in_kernel(name))?;
        Ok(Report {
            instructions: out.instructions,
            warnings: out.warnings,
        })
    }

    /// Places the `.global` variables of `module` in its window on first use. An error when
    /// another module already holds the window (they were `MODULE_WINDOWS` parses apart).
    fn load(&mut self, module: &Module) -> std::result::Result<(), String> {
        let data = &module.data;
        if data.global_init.is_empty() {
            return Ok(());
        }
        match self.windows.entry(data.global_base) {
            Entry::Occupied(e) if *e.get() == module.id => Ok(()),
            Entry::Occupied(e) => Err(format!(
                "the .global variables of this module (parsed {} modules apart from the one already loaded) would share the addresses {:#x}.. of that module's in this simulator; launch it on a new Sim",
                module.id.abs_diff(*e.get()),
                data.global_base
            )),
            Entry::Vacant(e) => {
                e.insert(module.id);
                self.global.insert(data.global_base, data.global_init.clone());
                Ok(())
            }
        }
    }
}

/// The kernel's own limits on its block: `.reqntid` (exactly this block) and `.maxntid` (at
/// most this many threads), as `__launch_bounds__` and `__cluster_dims__`-free kernels declare
/// them. A GPU refuses such a launch.
fn check_bounds(prog: &Program, block: [u32; 3]) -> std::result::Result<(), String> {
    let [x, y, z] = block;
    let threads = x as u64 * y as u64 * z as u64;
    if let Some(req) = prog.reqntid.filter(|&r| r != block) {
        return Err(format!(
            "block {x}x{y}x{z} differs from the kernel's .reqntid {}x{}x{}",
            req[0], req[1], req[2]
        ));
    }
    if let Some(max) = prog.maxntid {
        let most = max.iter().map(|&d| d as u64).product::<u64>();
        if threads > most {
            return Err(format!(
                "block {x}x{y}x{z} has {threads} threads, more than the kernel's .maxntid {}x{}x{} allows ({most}, from __launch_bounds__)",
                max[0], max[1], max[2]
            ));
        }
    }
    Ok(())
}

/// CUDA's limits on grid and block sizes.
fn check_dims(l: Launch) -> std::result::Result<(), String> {
    let [gx, gy, gz] = l.grid.array();
    let [bx, by, bz] = l.block.array();
    if [gx, gy, gz, bx, by, bz].contains(&0) {
        return Err(format!(
            "grid {gx}x{gy}x{gz} and block {bx}x{by}x{bz} must not have a zero dimension"
        ));
    }
    if gx > i32::MAX as u32 || gy > 65535 || gz > 65535 {
        return Err(format!(
            "grid {gx}x{gy}x{gz} exceeds CUDA's limits (2^31-1, 65535, 65535)"
        ));
    }
    let threads = bx as u64 * by as u64 * bz as u64;
    if bx > 1024 || by > 1024 || bz > 64 || threads > MAX_THREADS_PER_BLOCK as u64 {
        return Err(format!("block {bx}x{by}x{bz} ({threads} threads) exceeds CUDA's limits (1024 threads, z at most 64)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module whose kernel `k` copies its `.global` `g` (initially `value`) to its argument.
    fn module(id: u64, value: u32) -> Module {
        let text = format!(
            ".version 8.8\n.target sm_80\n.address_size 64\n.global .align 4 .u32 g = {value};\n\
             .visible .entry k(.param .u64 p) {{ .reg .b32 %r1; .reg .b64 %rd<3>;\n\
             ld.param.u64 %rd1, [p]; cvta.to.global.u64 %rd2, %rd1;\n\
             ld.global.u32 %r1, [g]; st.global.u32 [%rd2], %r1; ret; }}"
        );
        Module::parse_as(&text, id).expect("parses")
    }

    /// `g` of module `m` as kernel `k` reads it on `sim`.
    fn read_g(sim: &mut Sim, m: &Module) -> Result<u32> {
        let out = sim.zeros(4);
        let launch = Launch {
            grid: Dim3::x(1),
            block: Dim3::x(1),
            shared_bytes: 0,
        };
        sim.launch(m, "k", launch, &[Arg::Ptr(out)])?;
        Ok(sim.read_u32(out)[0])
    }

    #[test]
    fn modules_far_apart_in_parse_order_keep_their_own_globals() {
        let mut sim = Sim::new();
        let (a, b) = (module(3, 1), module(3 + 4096, 2));
        assert_eq!(read_g(&mut sim, &a), Ok(1));
        assert_eq!(read_g(&mut sim, &b), Ok(2));
        let c = module(3 + MODULE_WINDOWS, 3);
        let e = read_g(&mut sim, &c).expect_err("shares a's window");
        assert_eq!(e.kind(), crate::ErrorKind::Launch, "{e}");
        assert!(e.message().contains("would share the addresses"), "{e}");
        assert_eq!(read_g(&mut Sim::new(), &c), Ok(3));
    }
}
