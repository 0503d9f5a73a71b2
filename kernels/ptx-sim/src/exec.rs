//! Runs a launch: blocks one after another, the warps of a block in turn until each waits at a
//! barrier or exits, the lanes of a warp in SIMT fashion (the lanes at the lowest program
//! counter step together, so divergent paths reconverge where they meet).

use std::collections::{HashSet, VecDeque};

use crate::alu;
use crate::decode::{mask, Program};
use crate::error::{ErrorKind, Result, SimError};
use crate::inst::*;
use crate::memory::{
    check_range, load_le, store_le, Accessor, GlobalConflict, GlobalMem, Shadow, SyncLog,
    CONST_WINDOW, LOCAL_WINDOW, SHARED_WINDOW, WINDOW_SIZE,
};

/// Everything fixed for one launch.
pub struct LaunchCtx<'a> {
    /// The kernel.
    pub prog: &'a Program,
    /// The module's const bank.
    pub consts: &'a [u8],
    /// The kernel parameter buffer.
    pub params: &'a [u8],
    /// Grid size in blocks.
    pub grid: [u32; 3],
    /// Block size in threads.
    pub block: [u32; 3],
    /// Dynamic shared memory in bytes.
    pub dynamic_shared: u32,
    /// Stop with an error after this many thread-instructions.
    pub limit: u64,
    /// Units in the last place every f32 `.approx` result is moved by ([`alu::approx_error`]).
    pub approx_ulps: u32,
}

/// What a finished launch reports.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Thread-instructions executed (a warp instruction counts once per active lane).
    pub instructions: u64,
    /// Warnings (registers read before any write), each once.
    pub warnings: Vec<String>,
}

const MAX_WARNINGS: usize = 50;
const NUM_BARRIERS: usize = 16;
/// Every byte of a block's shared memory when the block starts: hardware leaves it undefined,
/// so a kernel that reads what it never wrote gets NaN (as f32) or -1 (as integers), values
/// that fail its tests, rather than convenient zeros.
const SHARED_POISON: u8 = 0xff;

/// What a warning is about; each is given once per launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Warning {
    /// A register read before any write to it, at a PTX line.
    Unwritten { line: u32, reg: u32 },
    /// A shuffle reading a lane that does not take part, at a PTX line.
    ShuffleSource { line: u32, lane: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    Run,
    /// Waiting at barrier `id`.
    Bar(u8),
    /// Waiting for the other lanes of a `.sync` warp instruction.
    WarpWait,
    Exit,
}

#[derive(Clone, Debug)]
struct Warp {
    pc: [u32; 32],
    state: [Lane; 32],
    /// Per lane: pcs of the `call` instructions being executed.
    stack: Vec<Vec<u32>>,
    /// The `bar.warp.sync` instructions completed, for ordering shared-memory accesses.
    log: SyncLog,
    /// Lanes with `cp.async` copies issued and not completed (their shared accesses are
    /// checked against the copies' destinations; the others pay one test).
    copying: u32,
}

/// Most `cp.async` copies and committed groups one thread may have pending (a pipeline keeps
/// a few stages of a few copies each; this bounds the memory a hostile kernel can take).
const MAX_ASYNC_PENDING: usize = 1024;

/// A `cp.async` issued by a thread and not completed: it reads global memory and writes
/// shared memory only when completed.
#[derive(Clone, Copy, Debug)]
struct AsyncCopy {
    /// Shared offset of the destination.
    dst: u32,
    /// Global address of the source.
    src: u64,
    /// cp-size: bytes written at `dst`.
    size: u8,
    /// Bytes read from `src`; the rest of `size` are zeros.
    src_size: u8,
    /// Barrier interval it was issued in.
    epoch: u64,
    /// PTX line of the `cp.async`.
    line: u32,
}

/// One thread's `cp.async` copies not completed, oldest first, and its committed groups.
#[derive(Clone, Debug, Default)]
struct AsyncQueue {
    copies: VecDeque<AsyncCopy>,
    /// Copies in each committed group, oldest first (a group may be empty).
    groups: VecDeque<u32>,
    /// The copies in `groups` (the first ones of `copies`; the rest are not committed).
    committed: usize,
}

impl AsyncQueue {
    /// Puts the copies not yet committed in a new group.
    fn commit(&mut self) {
        let fresh = self.copies.len() - self.committed;
        self.groups.push_back(fresh as u32);
        self.committed = self.copies.len();
    }

    fn is_empty(&self) -> bool {
        self.copies.is_empty() && self.groups.is_empty()
    }

    /// The oldest pending copy whose destination overlaps shared bytes `[off, off + len)`.
    fn writing(&self, off: usize, len: usize) -> Option<&AsyncCopy> {
        self.copies
            .iter()
            .find(|c| overlaps(c.dst as usize, c.size as usize, off, len))
    }

    /// Whether another copy or group would pass `MAX_ASYNC_PENDING`.
    fn is_full(&self) -> bool {
        self.copies.len() + self.groups.len() >= MAX_ASYNC_PENDING
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Barrier {
    arrived: u32,
    expected: u32,
    /// Instruction of the first waiter (threads of one barrier must wait at the same one).
    pc: u32,
    /// Arrived threads whose `bar.red` predicate is true.
    true_count: u32,
}

/// Iterates the set bits of a lane mask.
struct Lanes(u32);

impl Iterator for Lanes {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let l = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(l)
    }
}

/// Runs every block of the launch.
pub fn run(ctx: &LaunchCtx, global: &mut GlobalMem) -> Result<Outcome> {
    let p = ctx.prog;
    let nthreads = ctx.block.iter().product::<u32>();
    let nwarps = nthreads.div_ceil(32) as usize;
    let shared_size = p.shared_bytes(ctx.dynamic_shared) as usize;
    // Blocks run one after another here but at once on a GPU: a plain access to global memory
    // another block wrote in this launch is an error, unless the kernel may order its blocks
    // itself (a fence, an atomic, an acquire or release access).
    global.begin_launch();
    let order_blocks = !p.insts.iter().any(|i| {
        matches!(
            i.op,
            Op::Fence | Op::Atom { .. } | Op::Ld { strong: true, .. } | Op::St { strong: true, .. }
        )
    });
    let mut b = Block {
        ctx,
        global,
        order_blocks,
        ctaid: [0; 3],
        nthreads,
        nregs: p.nregs as usize,
        regs: vec![0; nwarps * p.nregs as usize * 32],
        written: vec![0; nwarps * p.nregs as usize],
        frames: vec![0; nthreads as usize * p.frame_bytes as usize],
        shared: vec![SHARED_POISON; shared_size],
        shadow: Shadow::new(shared_size),
        warps: Vec::with_capacity(nwarps),
        asyncs: vec![AsyncQueue::default(); nthreads as usize],
        bars: [Barrier::default(); NUM_BARRIERS],
        epoch: 0,
        budget: ctx.limit,
        clock: 0,
        out: Outcome::default(),
        warned: HashSet::new(),
    };
    for z in 0..ctx.grid[2] {
        for y in 0..ctx.grid[1] {
            for x in 0..ctx.grid[0] {
                b.ctaid = [x, y, z];
                b.charge_setup()
                    .and_then(|()| {
                        b.reset();
                        b.run_block()
                    })
                    .map_err(|e| e.in_block([x, y, z]).in_kernel(&p.name))?;
            }
        }
    }
    Ok(b.out)
}

struct Block<'a, 'g> {
    ctx: &'a LaunchCtx<'a>,
    global: &'g mut GlobalMem,
    /// Whether global accesses are checked against other blocks' stores of the launch.
    order_blocks: bool,
    ctaid: [u32; 3],
    nthreads: u32,
    nregs: usize,
    /// Registers, `[warp][reg][lane]`.
    regs: Vec<u64>,
    /// Lanes that have written each register, `[warp][reg]`.
    written: Vec<u32>,
    /// Per-thread frames (`.local` and function parameters).
    frames: Vec<u8>,
    shared: Vec<u8>,
    shadow: Shadow,
    warps: Vec<Warp>,
    /// Per thread (linear index): its `cp.async` copies not completed. Every thread completes
    /// them when it exits, so all are empty when a block ends.
    asyncs: Vec<AsyncQueue>,
    bars: [Barrier; NUM_BARRIERS],
    /// Current barrier interval, unique over the launch (it cannot wrap).
    epoch: u64,
    /// The most thread-instructions the launch may run in all: its limit less what the
    /// setups of its blocks were charged so far.
    budget: u64,
    clock: u64,
    out: Outcome,
    /// The warnings given so far (each once).
    warned: HashSet<Warning>,
}

impl Block<'_, '_> {
    /// Charges the setup of a block to the instruction budget: one instruction per thread and
    /// per 64 bytes of registers, frames and shared memory cleared, so that a huge grid of
    /// tiny blocks stops at the limit like an endless loop does.
    fn charge_setup(&mut self) -> Result<()> {
        let bytes =
            self.regs.len() * 8 + self.written.len() * 4 + self.frames.len() + self.shared.len();
        let cost = self.nthreads as u64 + bytes as u64 / 64;
        let spent = self.out.instructions;
        self.budget = self
            .budget
            .checked_sub(cost)
            .filter(|&left| left >= spent)
            .ok_or_else(|| self.limit_reached())?;
        Ok(())
    }

    /// The error for a launch that ran out of its instruction budget.
    fn limit_reached(&self) -> SimError {
        SimError::new(
            ErrorKind::InstructionLimit,
            format!(
                "instruction limit of {} reached (an endless loop? the setup of each block counts one instruction per thread and per 64 bytes it clears)",
                self.ctx.limit
            ),
        )
    }

    fn reset(&mut self) {
        self.regs.fill(0);
        self.written.fill(0);
        self.frames.fill(0);
        self.shared.fill(SHARED_POISON);
        self.bars = [Barrier::default(); NUM_BARRIERS];
        self.epoch += 1;
        self.clock = 0;
        self.warps.clear();
        let nwarps = self.nthreads.div_ceil(32);
        for w in 0..nwarps as usize {
            let mut state = [Lane::Exit; 32];
            for l in Lanes(self.threads_of(w)) {
                state[l] = Lane::Run;
            }
            self.warps.push(Warp {
                pc: [0; 32],
                state,
                stack: vec![Vec::new(); 32],
                log: SyncLog::default(),
                copying: 0,
            });
        }
    }

    /// The lanes of warp `w` that hold a thread of the block (the last warp may be partial).
    fn threads_of(&self, w: usize) -> u32 {
        let n = (self.nthreads as usize - w * 32).min(32);
        if n == 32 {
            !0
        } else {
            (1 << n) - 1
        }
    }

    fn tid(&self, w: usize, lane: usize) -> [u32; 3] {
        let t = (w * 32 + lane) as u32;
        let [bx, by, _] = self.ctx.block;
        [t % bx, (t / bx) % by, t / (bx * by)]
    }

    /// How a race error names the other side: the thread with this block-linear index, as
    /// `thread (x,y,z)`, or "other threads" when the shadow does not know which.
    fn thread_name(&self, other: Option<u32>) -> String {
        match other {
            Some(t) => {
                let [x, y, z] = self.tid(t as usize / 32, t as usize % 32);
                format!("thread ({x},{y},{z})")
            }
            None => "other threads".to_string(),
        }
    }

    /// This block's index in the grid, x fastest (wrapping past `u32`).
    fn linear_block(&self) -> u32 {
        let [x, y, z] = self.ctaid;
        let [gx, gy, _] = self.ctx.grid;
        x.wrapping_add(gx.wrapping_mul(y.wrapping_add(gy.wrapping_mul(z))))
    }

    /// The grid coordinates of block `linear`.
    fn block_at(&self, linear: u32) -> [u32; 3] {
        let [gx, gy, _] = self.ctx.grid.map(u64::from);
        let linear = u64::from(linear);
        [linear % gx, linear / gx % gy, linear / (gx * gy)].map(|c| c as u32)
    }

    /// The error for a global access of `len` bytes at `addr` that `conflict` found.
    fn global_race(&self, conflict: GlobalConflict, write: bool, addr: u64, len: u32) -> SimError {
        let what = if write { "store" } else { "load" };
        let msg = match conflict {
            GlobalConflict::OtherBlock(other) => {
                let [x, y, z] = self.block_at(other);
                format!(
                    "global-memory race: this {what} of {len} bytes and a store by block ({x},{y},{z}) of the same launch; blocks run at the same time on a GPU (order them with two launches, or a fence and atomics)"
                )
            }
            GlobalConflict::NonCoherent => format!(
                "ld.global.nc of {len} bytes the launch wrote: a non-coherent load may see stale data for memory the kernel writes (use a plain ld)"
            ),
        };
        SimError::new(ErrorKind::Race, msg).at_address(addr)
    }

    fn locate(&self, e: SimError, w: usize, lane: usize, line: u32) -> SimError {
        e.at_line(line).in_thread(self.ctaid, self.tid(w, lane))
    }

    fn run_block(&mut self) -> Result<()> {
        loop {
            let mut progressed = false;
            for w in 0..self.warps.len() {
                progressed |= self.run_warp(w)?;
            }
            let all_exited = self
                .warps
                .iter()
                .all(|wp| wp.state.iter().all(|&s| s == Lane::Exit));
            if all_exited {
                return Ok(());
            }
            if !progressed {
                return Err(self.deadlock());
            }
        }
    }

    /// Explains why no warp can go on: lanes wait at a warp-synchronous instruction for lanes
    /// that never come, or threads wait at a barrier others never reach.
    fn deadlock(&self) -> SimError {
        let (mut waiting, mut exited) = (Vec::new(), 0);
        for (w, wp) in self.warps.iter().enumerate() {
            for lane in Lanes(self.threads_of(w)) {
                match wp.state[lane] {
                    Lane::WarpWait => return self.warp_never_met(w, lane),
                    Lane::Bar(id) => waiting.push((w, lane, id)),
                    Lane::Exit => exited += 1,
                    Lane::Run => {}
                }
            }
        }
        let (w, lane, id) = waiting[0];
        let bar = self.bars[id as usize];
        let line = self.ctx.prog.insts[self.warps[w].pc[lane] as usize].line;
        let msg = format!(
            "barrier divergence: {} threads wait at barrier {id} (PTX line {}) expecting {}, {} of the {} threads exited without reaching it",
            waiting.len(),
            self.ctx.prog.insts[bar.pc as usize].line,
            bar.expected,
            exited,
            self.nthreads
        );
        self.locate(
            SimError::new(ErrorKind::BarrierDivergence, msg),
            w,
            lane,
            line,
        )
    }

    /// The error for lane `lane` of warp `w`, waiting at a warp-synchronous instruction whose
    /// other members exited or wait elsewhere.
    fn warp_never_met(&self, w: usize, lane: usize) -> SimError {
        let wp = &self.warps[w];
        let member = self.lane_mask(w, lane);
        let gone = Lanes(member)
            .filter(|&l| wp.state[l] == Lane::Exit)
            .fold(0u32, |m, l| m | 1 << l);
        let elsewhere = Lanes(member)
            .filter(|&l| wp.state[l] == Lane::WarpWait && wp.pc[l] != wp.pc[lane])
            .map(|l| {
                format!(
                    "lane {l} at PTX line {}",
                    self.ctx.prog.insts[wp.pc[l] as usize].line
                )
            })
            .collect::<Vec<_>>();
        let op = &self.ctx.prog.insts[wp.pc[lane] as usize].op;
        let mut msg = format!(
            "{} waits for lanes that never reach it (lanes {gone:#010x} exited)",
            warp_inst(op, member)
        );
        if !elsewhere.is_empty() {
            msg += &format!(
                "; {} wait at another warp-synchronous instruction (only bar.warp.sync may meet across instructions)",
                elsewhere.join(", ")
            );
        }
        let line = self.ctx.prog.insts[wp.pc[lane] as usize].line;
        self.locate(SimError::new(ErrorKind::Warp, msg), w, lane, line)
    }

    fn running(&self, w: usize) -> u32 {
        let st = &self.warps[w].state;
        (0..32)
            .filter(|&l| st[l] == Lane::Run)
            .fold(0, |m, l| m | 1 << l)
    }

    /// Runs warp `w` until none of its lanes can run; returns whether it executed anything.
    fn run_warp(&mut self, w: usize) -> Result<bool> {
        let mut did = false;
        loop {
            let running = self.running(w);
            if running == 0 {
                return Ok(did);
            }
            did = true;
            let wp = &self.warps[w];
            let pc0 = Lanes(running).map(|l| wp.pc[l]).min().unwrap_or(0);
            let group = Lanes(running)
                .filter(|&l| wp.pc[l] == pc0)
                .fold(0u32, |m, l| m | 1 << l);
            let mut pc = pc0;
            loop {
                let prog = self.ctx.prog;
                let inst = prog.insts.get(pc as usize).ok_or_else(|| {
                    SimError::new(
                        ErrorKind::Trap,
                        "ran past the last instruction of the kernel",
                    )
                    .in_kernel(&prog.name)
                })?;
                self.out.instructions += group.count_ones() as u64;
                self.clock += 1;
                if self.out.instructions > self.budget {
                    let e = self.limit_reached();
                    return Err(self.locate(e, w, group.trailing_zeros() as usize, inst.line));
                }
                let active = match inst.guard {
                    None => group,
                    Some((r, neg)) => {
                        self.check_written(w, inst.line, r, group);
                        self.pred_mask(w, r, group) ^ if neg { group } else { 0 }
                    }
                };
                for &r in &inst.uses {
                    self.check_written(w, inst.line, r, active);
                }
                if !inst.is_control() {
                    self.exec(w, inst, active)?;
                    pc += 1;
                    if group == running {
                        continue;
                    }
                    for l in Lanes(group) {
                        self.warps[w].pc[l] = pc;
                    }
                    break;
                }
                for l in Lanes(group) {
                    self.warps[w].pc[l] = pc;
                }
                self.control(w, pc, inst, active, group)?;
                break;
            }
        }
    }

    fn pred_mask(&self, w: usize, r: u32, group: u32) -> u32 {
        let base = (w * self.nregs + r as usize) * 32;
        Lanes(group)
            .filter(|&l| self.regs[base + l] & 1 != 0)
            .fold(0, |m, l| m | 1 << l)
    }

    /// Warns (once per line and register) when a lane of `lanes` reads register `r`, at PTX
    /// line `line`, before any write to it.
    #[inline(always)]
    fn check_written(&mut self, w: usize, line: u32, r: u32, lanes: u32) {
        let unwritten = lanes & !self.written[w * self.nregs + r as usize];
        if unwritten != 0 {
            self.warn_unwritten(w, line, r, unwritten);
        }
    }

    #[cold]
    #[inline(never)]
    fn warn_unwritten(&mut self, w: usize, line: u32, reg: u32, lanes: u32) {
        self.warn(Warning::Unwritten { line, reg }, |b| {
            let [x, y, z] = b.tid(w, lanes.trailing_zeros() as usize);
            format!(
                "kernel {}, PTX line {line}: thread ({x},{y},{z}) reads register {} before any write to it",
                b.ctx.prog.name, b.ctx.prog.reg_name(reg)
            )
        });
    }

    /// Adds the warning `message` describes unless `what` was warned about already or there
    /// are `MAX_WARNINGS`.
    fn warn(&mut self, what: Warning, message: impl FnOnce(&Self) -> String) {
        if self.warned.len() < MAX_WARNINGS && self.warned.insert(what) {
            let m = message(self);
            self.out.warnings.push(m);
        }
    }

    #[inline(always)]
    fn get(&self, w: usize, s: Src, lane: usize) -> u64 {
        match s {
            Src::Reg(r) => self.regs[(w * self.nregs + r as usize) * 32 + lane],
            Src::Imm(v) => v,
            Src::Special(sp) => self.special(w, lane, sp),
        }
    }

    #[inline(always)]
    fn set(&mut self, w: usize, d: Dst, lane: usize, v: u64) {
        if d != SINK {
            let i = w * self.nregs + d as usize;
            self.regs[i * 32 + lane] = v;
            self.written[i] |= 1 << lane;
        }
    }

    #[inline(never)]
    fn special(&self, w: usize, lane: usize, sp: Special) -> u64 {
        let c = self.ctx;
        match sp {
            Special::Tid(a) => self.tid(w, lane)[a as usize] as u64,
            Special::Ntid(a) => c.block[a as usize] as u64,
            Special::Ctaid(a) => self.ctaid[a as usize] as u64,
            Special::Nctaid(a) => c.grid[a as usize] as u64,
            Special::Laneid => lane as u64,
            Special::Warpid => w as u64,
            Special::Nwarpid => self.warps.len() as u64,
            Special::Clock => self.clock,
            Special::Lanemask(cmp) => {
                let bit = 1u64 << lane;
                mask(
                    match cmp {
                        Cmp::Eq => bit,
                        Cmp::Lt => bit - 1,
                        Cmp::Le => (bit << 1) - 1,
                        Cmp::Gt => !((bit << 1) - 1),
                        _ => !(bit - 1),
                    },
                    32,
                )
            }
            Special::Zero => 0,
        }
    }

    fn address(&self, w: usize, lane: usize, a: &Addr) -> u64 {
        let base = a.base.map_or(0, |r| self.get(w, Src::Reg(r), lane));
        base.wrapping_add(a.offset as u64)
    }

    /// Resolves a generic address to its state space.
    fn resolve(space: MemSpace, addr: u64) -> (MemSpace, u64) {
        if space != MemSpace::Generic {
            return (space, addr);
        }
        for (window, s) in [
            (SHARED_WINDOW, MemSpace::Shared),
            (LOCAL_WINDOW, MemSpace::Local),
            (CONST_WINDOW, MemSpace::Const),
        ] {
            if (window..window + WINDOW_SIZE).contains(&addr) {
                return (s, addr - window);
            }
        }
        (MemSpace::Global, addr)
    }

    /// Reads `len` bytes (a power of two up to 16) for thread `lane` of warp `w`; `nc` for a
    /// non-coherent global load (`ld.global.nc`).
    #[allow(clippy::too_many_arguments)]
    fn load(
        &mut self,
        w: usize,
        lane: usize,
        space: MemSpace,
        nc: bool,
        addr: u64,
        len: u32,
        out: &mut [u8; 16],
    ) -> Result<()> {
        let (space, a) = Self::resolve(space, addr);
        check_align(addr, len)?;
        let n = len as usize;
        match space {
            MemSpace::Global => {
                let by = self.order_blocks.then(|| (self.linear_block(), nc));
                let (bytes, conflict) = self.global.load(a, len as u64, by)?;
                copy_small(&mut out[..n], bytes);
                if let Some(c) = conflict {
                    return Err(self.global_race(c, false, addr, len));
                }
            }
            MemSpace::Shared => {
                let off = check_range(a, len as u64, self.shared.len(), "shared")?;
                self.check_copying(w, lane, off, n, false)?;
                self.shared_access(w, lane, off, n, false, false)?;
                copy_small(&mut out[..n], &self.shared[off..off + n]);
            }
            MemSpace::Local | MemSpace::FrameParam => {
                let off = self.frame_offset(w, lane, a, len)?;
                copy_small(&mut out[..n], &self.frames[off..off + n]);
            }
            MemSpace::Const => {
                let off = check_range(a, len as u64, self.ctx.consts.len(), "const")?;
                out[..n].copy_from_slice(&self.ctx.consts[off..off + n]);
            }
            MemSpace::KernelParam => {
                let off = check_range(a, len as u64, self.ctx.params.len(), "kernel parameter")?;
                out[..n].copy_from_slice(&self.ctx.params[off..off + n]);
            }
            MemSpace::Generic => unreachable!("resolved above"),
        }
        Ok(())
    }

    fn store(
        &mut self,
        w: usize,
        lane: usize,
        space: MemSpace,
        addr: u64,
        bytes: &[u8],
    ) -> Result<()> {
        let (space, a) = Self::resolve(space, addr);
        let len = bytes.len() as u32;
        check_align(addr, len)?;
        let n = bytes.len();
        match space {
            MemSpace::Global => {
                let by = self.order_blocks.then(|| self.linear_block());
                if let Some(c) = self.global.store(a, bytes, by)? {
                    return Err(self.global_race(c, true, addr, len));
                }
            }
            MemSpace::Shared => {
                let off = check_range(a, len as u64, self.shared.len(), "shared")?;
                self.check_copying(w, lane, off, n, true)?;
                self.shared_access(w, lane, off, n, true, false)?;
                copy_small(&mut self.shared[off..off + n], bytes);
            }
            MemSpace::Local | MemSpace::FrameParam => {
                let off = self.frame_offset(w, lane, a, len)?;
                copy_small(&mut self.frames[off..off + n], bytes);
            }
            MemSpace::Const | MemSpace::KernelParam => {
                return Err(SimError::new(
                    ErrorKind::OutOfBounds,
                    "store to read-only const or parameter memory",
                )
                .at_address(addr))
            }
            MemSpace::Generic => unreachable!("resolved above"),
        }
        Ok(())
    }

    fn frame_offset(&self, w: usize, lane: usize, a: u64, len: u32) -> Result<usize> {
        let fb = self.ctx.prog.frame_bytes as usize;
        let off = check_range(a, len as u64, fb, "local")?;
        Ok((w * 32 + lane) * fb + off)
    }

    fn shared_access(
        &mut self,
        w: usize,
        lane: usize,
        off: usize,
        len: usize,
        write: bool,
        atomic: bool,
    ) -> Result<()> {
        let log = &self.warps[w].log;
        let who = Accessor {
            thread: (w * 32 + lane) as u32,
            warp: w as u32,
            sync: log.now(),
            epoch: self.epoch,
        };
        let Some(c) = self.shadow.access(off, len, who, write, atomic, log) else {
            return Ok(());
        };
        let other = self.thread_name(c.other);
        let msg = format!(
            "shared-memory race: this {} of {len} bytes at shared offset {off:#x} and a {} by {other} with no barrier between",
            if write { "write" } else { "read" },
            if c.other_wrote { "write" } else { "read" },
        );
        Err(SimError::new(ErrorKind::Race, msg).at_address(off as u64))
    }

    /// Fails when thread `lane` of warp `w` reads (`write` false) or writes shared bytes
    /// `[off, off + len)` that one of its own `cp.async` copies, not completed, will write.
    /// Lanes with no such copies pay one test.
    #[inline(always)]
    fn check_copying(
        &self,
        w: usize,
        lane: usize,
        off: usize,
        len: usize,
        write: bool,
    ) -> Result<()> {
        if self.warps[w].copying & (1 << lane) == 0 {
            return Ok(());
        }
        self.own_copy_conflict(w, lane, off, len, write)
    }

    #[cold]
    #[inline(never)]
    fn own_copy_conflict(
        &self,
        w: usize,
        lane: usize,
        off: usize,
        len: usize,
        write: bool,
    ) -> Result<()> {
        let Some(c) = self.asyncs[w * 32 + lane].writing(off, len) else {
            return Ok(());
        };
        let msg = format!(
            "this {} of {len} bytes at shared offset {off:#x} touches the destination of this thread's cp.async of PTX line {} ({} bytes at shared offset {:#x}), which has not completed: wait for it with cp.async.wait_group or cp.async.wait_all first",
            if write { "write" } else { "read" },
            c.line,
            c.size,
            c.dst
        );
        Err(SimError::new(ErrorKind::Race, msg).at_address(off as u64))
    }

    /// Issues `cp.async` (PTX line `line`) for thread `lane` of warp `w`: `size` bytes to shared
    /// address `dst`, the first `src_size` from global address `src` and the rest zeros. Both
    /// addresses are checked now; the copy is made when the thread completes its group. Its
    /// destination counts as written by the thread from now on for the race check, so that a
    /// thread still reading the bytes in this barrier interval is a race.
    #[allow(clippy::too_many_arguments)]
    fn cp_async(
        &mut self,
        w: usize,
        lane: usize,
        line: u32,
        dst: u64,
        src: u64,
        size: u32,
        src_size: u64,
    ) -> Result<()> {
        if src_size > size as u64 {
            return Err(SimError::new(
                ErrorKind::OutOfBounds,
                format!("cp.async with src-size {src_size}, larger than its cp-size {size} (undefined in the PTX ISA)"),
            )
            .at_address(src));
        }
        for (what, addr) in [("destination", dst), ("source", src)] {
            if !addr.is_multiple_of(size as u64) {
                return Err(SimError::new(
                    ErrorKind::Misaligned,
                    format!("cp.async of {size} bytes with its {what} at an address that is not a multiple of {size}"),
                )
                .at_address(addr));
            }
        }
        let named = |e: SimError| reword(e, |m| format!("cp.async: {m}"));
        let off = check_range(dst, size as u64, self.shared.len(), "shared").map_err(named)?;
        if src_size > 0 {
            self.global.load(src, src_size, None).map_err(named)?;
        }
        let (t, len) = (w * 32 + lane, size as usize);
        if let Some(c) = self.asyncs[t].writing(off, len) {
            let msg = format!(
                "this cp.async writes shared bytes at offset {off:#x} that this thread's cp.async of PTX line {} also writes, and neither has completed: the PTX ISA leaves the order of their writes undefined (wait for the first before issuing the second)",
                c.line
            );
            return Err(SimError::new(ErrorKind::Race, msg).at_address(off as u64));
        }
        if self.asyncs[t].is_full() {
            return Err(too_many_async());
        }
        self.shared_access(w, lane, off, len, true, false)
            .map_err(named)?;
        self.asyncs[t].copies.push_back(AsyncCopy {
            dst: off as u32,
            src,
            size: size as u8,
            src_size: src_size as u8,
            epoch: self.epoch,
            line,
        });
        self.warps[w].copying |= 1 << lane;
        Ok(())
    }

    /// Completes the committed groups of thread `lane` of warp `w` but the `keep` newest,
    /// oldest first: their copies read global memory and write shared memory now.
    fn complete_groups(&mut self, w: usize, lane: usize, keep: usize) -> Result<()> {
        let t = w * 32 + lane;
        while self.asyncs[t].groups.len() > keep {
            let q = &mut self.asyncs[t];
            let n = q.groups.pop_front().unwrap_or(0) as usize;
            q.committed -= n;
            for _ in 0..n {
                if let Some(c) = self.asyncs[t].copies.pop_front() {
                    self.complete(w, lane, c)?;
                }
            }
        }
        if self.asyncs[t].copies.is_empty() {
            self.warps[w].copying &= !(1 << lane);
        }
        Ok(())
    }

    /// Carries out copy `c` of thread `lane` of warp `w`: a global load (checked against other
    /// blocks' stores) and a shared write by the thread at this moment (checked for races, and
    /// against accesses by other threads in the barrier intervals since it was issued: the
    /// copy may land at any time until this completion).
    fn complete(&mut self, w: usize, lane: usize, c: AsyncCopy) -> Result<()> {
        let note = |e: SimError| {
            reword(e, |m| {
                format!("{m} (completing the cp.async of PTX line {})", c.line)
            })
        };
        let mut buf = [0u8; 16];
        let n = c.src_size as usize;
        if n > 0 {
            let by = self.order_blocks.then(|| (self.linear_block(), false));
            let (bytes, conflict) = self.global.load(c.src, n as u64, by).map_err(note)?;
            buf[..n].copy_from_slice(bytes);
            if let Some(k) = conflict {
                return Err(note(self.global_race(k, false, c.src, n as u32)));
            }
        }
        let (off, len) = (c.dst as usize, c.size as usize);
        let thread = (w * 32 + lane) as u32;
        if let Some(k) = self
            .shadow
            .touched_between(off, len, c.epoch, self.epoch, thread)
        {
            let other = self.thread_name(k.other);
            let msg = format!(
                "shared-memory race: the cp.async of PTX line {}, completed here, writes {len} bytes at shared offset {off:#x} that {other} {} after it was issued and before this wait (the copy may land at any time until the issuing thread waits for it; other threads must access its destination only after that wait and a barrier)",
                c.line,
                if k.other_wrote { "wrote" } else { "read" }
            );
            return Err(SimError::new(ErrorKind::Race, msg).at_address(off as u64));
        }
        self.shared_access(w, lane, off, len, true, false)
            .map_err(note)?;
        self.shared[off..off + len].copy_from_slice(&buf[..len]);
        Ok(())
    }

    /// Thread `lane` of warp `w` exits (at PTX line `line`), completing its `cp.async` copies.
    fn exit_lane(&mut self, w: usize, lane: usize, line: u32) -> Result<()> {
        if !self.asyncs[w * 32 + lane].is_empty() {
            self.asyncs[w * 32 + lane].commit();
            self.complete_groups(w, lane, 0)
                .map_err(|e| self.locate(e, w, lane, line))?;
        }
        self.warps[w].state[lane] = Lane::Exit;
        Ok(())
    }

    /// Executes a non-control instruction for the `active` lanes.
    fn exec(&mut self, w: usize, inst: &Inst, active: u32) -> Result<()> {
        match &inst.op {
            &Op::Mov { d, a, bits } => {
                for l in Lanes(active) {
                    let v = mask(self.get(w, a, l), bits);
                    self.set(w, d, l, v);
                }
            }
            Op::Pack { d, parts, bits } => {
                for l in Lanes(active) {
                    let v = parts.iter().enumerate().fold(0u64, |acc, (i, &p)| {
                        acc | mask(self.get(w, p, l), *bits) << (i as u32 * bits)
                    });
                    self.set(w, *d, l, v);
                }
            }
            Op::Unpack { ds, a, bits } => {
                for l in Lanes(active) {
                    let v = self.get(w, *a, l);
                    for (i, &d) in ds.iter().enumerate() {
                        self.set(w, d, l, mask(v >> (i as u32 * bits), *bits));
                    }
                }
            }
            &Op::Cvta {
                d,
                a,
                space,
                to_generic,
                bits,
            } => {
                let window = match space {
                    MemSpace::Shared => SHARED_WINDOW,
                    MemSpace::Local => LOCAL_WINDOW,
                    MemSpace::Const => CONST_WINDOW,
                    _ => return Err(unsupported_at(inst, "cvta for this state space")),
                };
                for l in Lanes(active) {
                    let v = self.get(w, a, l);
                    let r = if to_generic {
                        v.wrapping_add(window)
                    } else {
                        v.wrapping_sub(window)
                    };
                    self.set(w, d, l, mask(r, bits));
                }
            }
            &Op::Int {
                op,
                ty,
                d,
                a,
                b,
                sat,
            } => {
                for l in Lanes(active) {
                    let v = alu::int_op(op, ty, self.get(w, a, l), self.get(w, b, l), sat);
                    self.set(w, d, l, v);
                }
            }
            &Op::IntUn { op, ty, d, a } => {
                for l in Lanes(active) {
                    let v = alu::int_unary(op, ty, self.get(w, a, l));
                    self.set(w, d, l, v);
                }
            }
            &Op::Mad {
                mode,
                ty,
                d,
                a,
                b,
                c,
            } => {
                for l in Lanes(active) {
                    let v = alu::mad(
                        mode,
                        ty,
                        self.get(w, a, l),
                        self.get(w, b, l),
                        self.get(w, c, l),
                    );
                    self.set(w, d, l, v);
                }
            }
            &Op::Sad { ty, d, a, b, c } => {
                for l in Lanes(active) {
                    let v = alu::sad(ty, self.get(w, a, l), self.get(w, b, l), self.get(w, c, l));
                    self.set(w, d, l, v);
                }
            }
            &Op::Float { op, ty, m, d, a, b } => {
                for l in Lanes(active) {
                    let (x, y) = (self.get(w, a, l), self.get(w, b, l));
                    let mut v = alu::float_op(op, ty, m, x, y);
                    if m.approx && ty == Ty::F32 {
                        v = alu::approx_error(v, x ^ y.rotate_left(16), self.ctx.approx_ulps);
                    }
                    self.set(w, d, l, v);
                }
            }
            &Op::FloatUn { op, ty, m, d, a } => {
                for l in Lanes(active) {
                    let x = self.get(w, a, l);
                    let mut v = alu::float_unary(op, ty, m, x);
                    if m.approx && ty == Ty::F32 {
                        v = alu::approx_error(v, x, self.ctx.approx_ulps);
                    }
                    self.set(w, d, l, v);
                }
            }
            &Op::Fma { ty, m, d, a, b, c } => {
                for l in Lanes(active) {
                    let v = alu::fma(
                        ty,
                        m,
                        self.get(w, a, l),
                        self.get(w, b, l),
                        self.get(w, c, l),
                    );
                    self.set(w, d, l, v);
                }
            }
            &Op::Testp { kind, ty, d, a } => {
                for l in Lanes(active) {
                    let v = alu::testp(kind, ty, self.get(w, a, l)) as u64;
                    self.set(w, d, l, v);
                }
            }
            &Op::Setp {
                cmp,
                ty,
                ftz,
                d,
                d2,
                a,
                b,
                comb,
            } => {
                let pair = matches!(ty, Ty::F16x2 | Ty::Bf16x2);
                for l in Lanes(active) {
                    let (x, y) = (self.get(w, a, l), self.get(w, b, l));
                    let (t, u) = if pair {
                        alu::compare_halves(cmp, ty, x, y, ftz)
                    } else {
                        let t = alu::compare(cmp, ty, x, y, ftz);
                        (t, !t)
                    };
                    let (p, q) = match comb {
                        None => (t, u),
                        Some((op, c, neg)) => {
                            let c = (self.get(w, c, l) & 1 != 0) != neg;
                            (bool_op(op, t, c), bool_op(op, u, c))
                        }
                    };
                    self.set(w, d, l, p as u64);
                    self.set(w, d2, l, q as u64);
                }
            }
            &Op::Set {
                cmp,
                ty,
                dty,
                ftz,
                d,
                a,
                b,
            } => {
                for l in Lanes(active) {
                    let v = alu::set(cmp, dty, ty, ftz, self.get(w, a, l), self.get(w, b, l));
                    self.set(w, d, l, v);
                }
            }
            &Op::Selp { bits, d, a, b, c } => {
                for l in Lanes(active) {
                    let v = if self.get(w, c, l) & 1 != 0 {
                        self.get(w, a, l)
                    } else {
                        self.get(w, b, l)
                    };
                    self.set(w, d, l, mask(v, bits));
                }
            }
            &Op::Slct {
                bits,
                cty,
                ftz,
                d,
                a,
                b,
                c,
            } => {
                for l in Lanes(active) {
                    let v = if alu::slct_picks_a(cty, ftz, self.get(w, c, l)) {
                        self.get(w, a, l)
                    } else {
                        self.get(w, b, l)
                    };
                    self.set(w, d, l, mask(v, bits));
                }
            }
            &Op::PredLogic { op, d, a, b } => {
                for l in Lanes(active) {
                    let (x, y) = (self.get(w, a, l) & 1 != 0, self.get(w, b, l) & 1 != 0);
                    let v = match op {
                        None => !x,
                        Some(op) => bool_op(op, x, y),
                    };
                    self.set(w, d, l, v as u64);
                }
            }
            &Op::Cvt { dty, sty, m, d, a } => {
                for l in Lanes(active) {
                    let v = alu::cvt(dty, sty, m, self.get(w, a, l));
                    self.set(w, d, l, v);
                }
            }
            &Op::CvtTf32 { m, d, a } => {
                for l in Lanes(active) {
                    let v = alu::cvt_tf32(m, self.get(w, a, l));
                    self.set(w, d, l, v);
                }
            }
            &Op::CvtPack { dty, m, d, a, b } => {
                for l in Lanes(active) {
                    let v = alu::cvt_pack(dty, m, self.get(w, a, l), self.get(w, b, l));
                    self.set(w, d, l, v);
                }
            }
            &Op::Bfe { ty, d, a, b, c } => {
                for l in Lanes(active) {
                    let v = alu::bfe(ty, self.get(w, a, l), self.get(w, b, l), self.get(w, c, l));
                    self.set(w, d, l, v);
                }
            }
            &Op::Bfi {
                bits,
                d,
                a,
                b,
                pos,
                len,
            } => {
                for l in Lanes(active) {
                    let v = alu::bfi(
                        bits,
                        self.get(w, a, l),
                        self.get(w, b, l),
                        self.get(w, pos, l),
                        self.get(w, len, l),
                    );
                    self.set(w, d, l, v);
                }
            }
            &Op::Dot {
                kind,
                a_signed,
                b_signed,
                d,
                a,
                b,
                c,
            } => {
                for l in Lanes(active) {
                    let (x, y, z) = (self.get(w, a, l), self.get(w, b, l), self.get(w, c, l));
                    let v = alu::dot(kind, a_signed, b_signed, x, y, z);
                    self.set(w, d, l, v);
                }
            }
            &Op::Vabsdiff4 {
                signed,
                add,
                d,
                a,
                b,
                c,
            } => {
                for l in Lanes(active) {
                    let (x, y, z) = (self.get(w, a, l), self.get(w, b, l), self.get(w, c, l));
                    self.set(w, d, l, alu::vabsdiff4(signed, add, x, y, z));
                }
            }
            &Op::Prmt { d, a, b, c } => {
                for l in Lanes(active) {
                    let v = alu::prmt(self.get(w, a, l), self.get(w, b, l), self.get(w, c, l));
                    self.set(w, d, l, v);
                }
            }
            &Op::Shf {
                left,
                wrap,
                d,
                a,
                b,
                c,
            } => {
                for l in Lanes(active) {
                    let v = alu::shf(
                        left,
                        wrap,
                        self.get(w, a, l),
                        self.get(w, b, l),
                        self.get(w, c, l),
                    );
                    self.set(w, d, l, v);
                }
            }
            Op::Ld {
                space,
                nc,
                ty,
                ds,
                addr,
                ..
            } => {
                let elem = ty.bytes();
                let len = elem * ds.len() as u32;
                let mut buf = [0u8; 16];
                for l in Lanes(active) {
                    let a = self.address(w, l, addr);
                    self.load(w, l, *space, *nc, a, len, &mut buf)
                        .map_err(|e| self.locate(e, w, l, inst.line))?;
                    for (i, &d) in ds.iter().enumerate() {
                        let raw = load_le(&buf[i * elem as usize..(i + 1) * elem as usize]);
                        let v = if ty.is_signed() {
                            alu::sext(raw, ty.bits()) as u64
                        } else {
                            raw
                        };
                        self.set(w, d, l, v);
                    }
                }
            }
            Op::St {
                space,
                ty,
                srcs,
                addr,
                ..
            } => {
                let elem = ty.bytes() as usize;
                let len = elem * srcs.len();
                let mut buf = [0u8; 16];
                for l in Lanes(active) {
                    for (i, &s) in srcs.iter().enumerate() {
                        store_le(&mut buf[i * elem..(i + 1) * elem], self.get(w, s, l));
                    }
                    let a = self.address(w, l, addr);
                    self.store(w, l, *space, a, &buf[..len])
                        .map_err(|e| self.locate(e, w, l, inst.line))?;
                }
            }
            &Op::Atom {
                space,
                op,
                ty,
                d,
                ref addr,
                b,
                c,
            } => {
                for l in Lanes(active) {
                    let a = self.address(w, l, addr);
                    let old = self
                        .atomic(w, l, space, a, op, ty, b, c)
                        .map_err(|e| self.locate(e, w, l, inst.line))?;
                    self.set(w, d, l, old);
                }
            }
            Op::Activemask { d } => {
                // The lanes executing this instruction together: those that reached it on
                // another path, exited or are predicated off are not active.
                for l in Lanes(active) {
                    self.set(w, *d, l, active as u64);
                }
            }
            &Op::CpAsync {
                ref dst,
                ref src,
                size,
                src_size,
                ignore,
            } => {
                for l in Lanes(active) {
                    let (d, s) = (self.address(w, l, dst), self.address(w, l, src));
                    let n = match ignore {
                        Some(p) if self.get(w, p, l) & 1 != 0 => 0,
                        _ => mask(self.get(w, src_size, l), 32),
                    };
                    self.cp_async(w, l, inst.line, d, s, size, n)
                        .map_err(|e| self.locate(e, w, l, inst.line))?;
                }
            }
            Op::CpAsyncCommit => {
                for l in Lanes(active) {
                    let q = &mut self.asyncs[w * 32 + l];
                    if q.is_full() {
                        let e = too_many_async();
                        return Err(self.locate(e, w, l, inst.line));
                    }
                    q.commit();
                }
            }
            &Op::CpAsyncWait { n, commit } => {
                for l in Lanes(active) {
                    let q = &mut self.asyncs[w * 32 + l];
                    if commit {
                        q.commit();
                    }
                    self.complete_groups(w, l, n as usize)
                        .map_err(|e| self.locate(e, w, l, inst.line))?;
                }
            }
            Op::Nop | Op::Fence => {}
            _ => unreachable!("control instructions go through `control`"),
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn atomic(
        &mut self,
        w: usize,
        l: usize,
        space: MemSpace,
        addr: u64,
        op: AtomOp,
        ty: Ty,
        b: Src,
        c: Src,
    ) -> Result<u64> {
        let (space, a) = Self::resolve(space, addr);
        let len = ty.bytes();
        check_align(addr, len)?;
        let (b, c) = (self.get(w, b, l), self.get(w, c, l));
        let slot: &mut [u8] = match space {
            MemSpace::Global => self.global.bytes_mut(a, len as u64)?,
            MemSpace::Shared => {
                let off = check_range(a, len as u64, self.shared.len(), "shared")?;
                self.check_copying(w, l, off, len as usize, true)?;
                self.shared_access(w, l, off, len as usize, true, true)?;
                &mut self.shared[off..off + len as usize]
            }
            _ => {
                return Err(SimError::new(
                    ErrorKind::Unsupported,
                    "atomic on a local, const or parameter address",
                )
                .at_address(addr))
            }
        };
        let old = load_le(slot);
        store_le(
            slot,
            alu::atom_apply(op, ty, old, b, c, space == MemSpace::Global),
        );
        Ok(if ty.is_signed() {
            alu::sext(old, ty.bits()) as u64
        } else {
            old
        })
    }

    /// Executes a control instruction: branches, calls, barriers and warp-synchronous ops.
    fn control(&mut self, w: usize, pc: u32, inst: &Inst, active: u32, group: u32) -> Result<()> {
        let skipped = group & !active;
        for l in Lanes(skipped) {
            self.warps[w].pc[l] = pc + 1;
        }
        match &inst.op {
            &Op::Bra { target } => {
                for l in Lanes(active) {
                    self.warps[w].pc[l] = target;
                }
            }
            Op::BrxIdx { index, targets } => {
                for l in Lanes(active) {
                    let i = self.get(w, *index, l);
                    let Some(&target) = usize::try_from(i).ok().and_then(|i| targets.get(i)) else {
                        let e = SimError::new(
                            ErrorKind::Trap,
                            format!("brx.idx index {i} is outside its {} targets", targets.len()),
                        );
                        return Err(self.locate(e, w, l, inst.line));
                    };
                    self.warps[w].pc[l] = target;
                }
            }
            Op::Call { target, ins, .. } => {
                for l in Lanes(active) {
                    self.copy_frame(w, l, ins);
                    let wp = &mut self.warps[w];
                    wp.stack[l].push(pc);
                    wp.pc[l] = *target;
                }
            }
            Op::Ret => {
                for l in Lanes(active) {
                    let Some(call_pc) = self.warps[w].stack[l].pop() else {
                        self.exit_lane(w, l, inst.line)?;
                        continue;
                    };
                    if let Op::Call { outs, .. } = &self.ctx.prog.insts[call_pc as usize].op {
                        self.copy_frame(w, l, outs);
                    }
                    self.warps[w].pc[l] = call_pc + 1;
                }
            }
            Op::Exit => {
                for l in Lanes(active) {
                    self.exit_lane(w, l, inst.line)?;
                }
            }
            Op::Trap => {
                if active != 0 {
                    let e = SimError::new(ErrorKind::Trap, "the kernel executed trap");
                    return Err(self.locate(e, w, active.trailing_zeros() as usize, inst.line));
                }
            }
            Op::Bar { .. } | Op::BarRed { .. } => {
                if active != 0 {
                    self.barrier(w, pc, inst, active)?;
                }
            }
            Op::WarpSync { .. }
            | Op::Shfl { .. }
            | Op::Vote { .. }
            | Op::Match { .. }
            | Op::Redux { .. }
            | Op::Mma(_) => self.warp_sync(w, pc, inst, active)?,
            _ => unreachable!("not a control instruction"),
        }
        Ok(())
    }

    /// Copies the parameter or result slots of a call in the frame of thread `l` of warp `w`.
    fn copy_frame(&mut self, w: usize, l: usize, copies: &[FrameCopy]) {
        let base = (w * 32 + l) * self.ctx.prog.frame_bytes as usize;
        for c in copies {
            let (from, to) = (base + c.from as usize, base + c.to as usize);
            self.frames.copy_within(from..from + c.len as usize, to);
        }
    }

    /// `bar.sync`, `bar.arrive` and `bar.red` at `pc` by the `active` lanes of warp `w`: they
    /// arrive at the barrier and wait there (`bar.arrive` goes on); the last arrival releases it.
    fn barrier(&mut self, w: usize, pc: u32, inst: &Inst, active: u32) -> Result<()> {
        let (wait, id, count, red) = match inst.op {
            Op::Bar { wait, id, count } => (wait, id, count, None),
            Op::BarRed {
                id,
                count,
                pred,
                negate,
                ..
            } => (true, id, count, Some((pred, negate))),
            _ => unreachable!("a barrier instruction"),
        };
        let l0 = active.trailing_zeros() as usize;
        let (id, expected) = self.barrier_operands(w, inst, id, count, active)?;
        let id = id as u8;
        let trues = red.map_or(0, |(pred, negate)| {
            Lanes(active)
                .filter(|&l| (self.get(w, pred, l) & 1 != 0) != negate)
                .count() as u32
        });
        let bar = &mut self.bars[id as usize];
        let msg = if bar.arrived == 0 {
            bar.expected = expected;
            bar.pc = pc;
            None
        } else if bar.expected != expected {
            Some(format!(
                "barrier divergence: threads arrive at barrier {id} expecting {} threads (PTX line {}) and {expected} threads",
                bar.expected, self.ctx.prog.insts[bar.pc as usize].line
            ))
        } else if wait && count.is_none() && bar.pc != pc {
            Some(format!(
                "barrier divergence: threads wait at barrier {id} at different instructions (PTX lines {} and {})",
                self.ctx.prog.insts[bar.pc as usize].line, inst.line
            ))
        } else {
            None
        };
        if let Some(msg) = msg {
            let e = SimError::new(ErrorKind::BarrierDivergence, msg);
            return Err(self.locate(e, w, l0, inst.line));
        }
        let bar = &mut self.bars[id as usize];
        bar.arrived += active.count_ones();
        bar.true_count += trues;
        let complete = bar.arrived >= bar.expected;
        for l in Lanes(active) {
            if wait {
                self.warps[w].state[l] = Lane::Bar(id);
            } else {
                self.warps[w].pc[l] = pc + 1;
            }
        }
        if complete {
            self.release(id);
        }
        Ok(())
    }

    /// The barrier id and thread count the `active` lanes of warp `w` give a barrier
    /// instruction (all threads of the block without `count`). An error unless every lane gives
    /// the same, the id is below 16 and the count is a positive multiple of the warp size
    /// within the block.
    fn barrier_operands(
        &self,
        w: usize,
        inst: &Inst,
        id: Src,
        count: Option<Src>,
        active: u32,
    ) -> Result<(u64, u32)> {
        let read = |l| {
            let n = count.map_or(self.nthreads as u64, |c| mask(self.get(w, c, l), 32));
            (mask(self.get(w, id, l), 32), n)
        };
        let l0 = active.trailing_zeros() as usize;
        let (bid, n) = read(l0);
        if let Some(l) = Lanes(active).find(|&l| read(l) != (bid, n)) {
            let (other_id, other_n) = read(l);
            let msg = format!(
                "barrier divergence: lanes of a warp disagree on the barrier: lane {l0} names barrier {bid} for {n} threads, lane {l} barrier {other_id} for {other_n}"
            );
            let e = SimError::new(ErrorKind::BarrierDivergence, msg);
            return Err(self.locate(e, w, l, inst.line));
        }
        let msg = if bid as usize >= NUM_BARRIERS {
            format!(
                "barrier id {bid} is out of range: a block has {NUM_BARRIERS} barriers, ids 0 to {}",
                NUM_BARRIERS - 1
            )
        } else if n == 0 || n > self.nthreads as u64 || (count.is_some() && !n.is_multiple_of(32)) {
            format!(
                "barrier {bid} with thread count {n} (block has {} threads; a count must be a multiple of the warp size, 32)",
                self.nthreads
            )
        } else {
            return Ok((bid, n as u32));
        };
        let e = SimError::new(ErrorKind::Launch, msg);
        Err(self.locate(e, w, l0, inst.line))
    }

    /// Completes barrier `id`: the threads waiting at it go on (those at a `bar.red` with the
    /// reduction), and a new barrier interval begins for the race checks, for the whole block
    /// even when the barrier had a thread count or `bar.arrive` arrivals (see the crate's doc).
    fn release(&mut self, id: u8) {
        let bar = std::mem::take(&mut self.bars[id as usize]);
        for w in 0..self.warps.len() {
            for l in 0..32 {
                if self.warps[w].state[l] != Lane::Bar(id) {
                    continue;
                }
                let pc = self.warps[w].pc[l];
                if let Op::BarRed { op, d, .. } = self.ctx.prog.insts[pc as usize].op {
                    let v = match op {
                        BarRedOp::Popc => bar.true_count,
                        BarRedOp::And => (bar.true_count == bar.arrived) as u32,
                        BarRedOp::Or => (bar.true_count > 0) as u32,
                    };
                    self.set(w, d, l, v as u64);
                }
                let wp = &mut self.warps[w];
                wp.state[l] = Lane::Run;
                wp.pc[l] += 1;
            }
        }
        for wp in &mut self.warps {
            wp.log.new_interval();
        }
        self.epoch += 1;
    }

    /// The member mask lane `l` of warp `w` names at the warp-synchronous instruction it is at.
    fn lane_mask(&self, w: usize, l: usize) -> u32 {
        let inst = &self.ctx.prog.insts[self.warps[w].pc[l] as usize];
        inst.op
            .member_mask()
            .map_or(0, |m| self.get(w, m, l) as u32)
    }

    /// `bar.warp.sync`, `shfl.sync`, `vote.sync`, `match.sync`, `redux.sync`: the lanes of a
    /// member mask meet at the instruction, then it runs for all of them at once. Lanes may
    /// name different masks (a cooperative-groups tile names its own lanes); each mask is a
    /// group of its own, and a lane named by a mask must use that same mask. On sm_70 and
    /// later the lanes of a `bar.warp.sync` may meet at different `bar.warp.sync`
    /// instructions (a `__syncwarp()` in each branch of an `if`); the instructions that
    /// exchange data must be the same one.
    fn warp_sync(&mut self, w: usize, pc: u32, inst: &Inst, active: u32) -> Result<()> {
        // Each lane's member mask, for the lanes here now and those already waiting.
        let mut masks = [0u32; 32];
        for l in Lanes(active) {
            masks[l] = self.own_member_mask(w, l, inst)?;
        }
        let (waiting, exited) = self.waiting_and_exited(w, pc, inst);
        for l in Lanes(waiting) {
            masks[l] = self.lane_mask(w, l);
        }
        let here = active | waiting;
        let exists = self.threads_of(w);
        if inst.op.is_aligned() && active != 0 && exists != FULL_WARP {
            let msg = format!(
                "{}, but this warp has {} threads (the block's {} threads are not a multiple of 32)",
                warp_inst(&inst.op, FULL_WARP),
                exists.count_ones(),
                self.nthreads
            );
            let e = SimError::new(ErrorKind::Warp, msg);
            return Err(self.locate(e, w, active.trailing_zeros() as usize, inst.line));
        }
        let mut pending = active;
        while pending != 0 {
            let l0 = pending.trailing_zeros() as usize;
            let member = masks[l0];
            let arrived = Lanes(here)
                .filter(|&l| masks[l] == member)
                .fold(0u32, |m, l| m | 1 << l);
            pending &= !arrived;
            let needed = member & exists;
            let err = if let Some(other) = Lanes(here & member & !arrived).next() {
                Some(format!("{}: lane {l0} names lane {other} in member mask {member:#010x}, but lane {other} executes the instruction with member mask {:#010x}", inst.op.warp_name(), masks[other]))
            } else if needed & exited & !arrived != 0 {
                Some(format!(
                    "{}: lanes {:#010x} exited without executing it",
                    warp_inst(&inst.op, member),
                    needed & exited & !arrived
                ))
            } else {
                None
            };
            if let Some(msg) = err {
                let e = SimError::new(ErrorKind::Warp, msg);
                return Err(self.locate(e, w, l0, inst.line));
            }
            let (state, step) = if needed & !arrived != 0 {
                (Lane::WarpWait, 0)
            } else {
                self.warp_op(w, inst, arrived, member)
                    .map_err(|e| self.locate(e, w, l0, inst.line))?;
                (Lane::Run, 1)
            };
            for l in Lanes(arrived) {
                let wp = &mut self.warps[w];
                wp.state[l] = state;
                wp.pc[l] += step;
            }
        }
        Ok(())
    }

    /// The member mask lane `l` of warp `w` gives `inst`, which must name the lane itself.
    fn own_member_mask(&self, w: usize, l: usize, inst: &Inst) -> Result<u32> {
        let mask = inst
            .op
            .member_mask()
            .expect("a warp-synchronous instruction");
        let mine = self.get(w, mask, l) as u32;
        if mine & (1 << l) == 0 {
            let e = SimError::new(
                ErrorKind::Warp,
                format!(
                    "lane {l} executes {} with member mask {mine:#010x}, which does not name it",
                    inst.op.warp_name()
                ),
            );
            return Err(self.locate(e, w, l, inst.line));
        }
        Ok(mine)
    }

    /// The lanes of warp `w` already waiting to meet at `inst` (at `pc`; any `bar.warp.sync`
    /// when it is one), and the lanes that exited.
    fn waiting_and_exited(&self, w: usize, pc: u32, inst: &Inst) -> (u32, u32) {
        let is_bar = matches!(inst.op, Op::WarpSync { .. });
        let wp = &self.warps[w];
        let (mut waiting, mut exited) = (0u32, 0u32);
        for (l, (state, &lpc)) in wp.state.iter().zip(&wp.pc).enumerate() {
            let meets_here = || {
                lpc == pc
                    || is_bar && matches!(self.ctx.prog.insts[lpc as usize].op, Op::WarpSync { .. })
            };
            match state {
                Lane::Exit => exited |= 1 << l,
                Lane::WarpWait if meets_here() => waiting |= 1 << l,
                _ => {}
            }
        }
        (waiting, exited)
    }

    /// Runs a warp-synchronous instruction for the lanes that met at it (`lanes`, all named by
    /// `member`).
    fn warp_op(&mut self, w: usize, inst: &Inst, lanes: u32, member: u32) -> Result<()> {
        match inst.op {
            Op::WarpSync { .. } => self.warps[w].log.push(member)?,
            Op::Shfl { .. } => self.shfl(w, inst, lanes),
            Op::Vote {
                mode, d, a, negate, ..
            } => {
                let truth = Lanes(lanes)
                    .filter(|&l| (self.get(w, a, l) & 1 != 0) != negate)
                    .fold(0u32, |m, l| m | 1 << l);
                let v = match mode {
                    VoteMode::Ballot => truth as u64,
                    VoteMode::All => (truth == lanes) as u64,
                    VoteMode::Any => (truth != 0) as u64,
                    VoteMode::Uni => (truth == lanes || truth == 0) as u64,
                };
                for l in Lanes(lanes) {
                    self.set(w, d, l, v);
                }
            }
            Op::Match {
                all, bits, d, p, a, ..
            } => {
                let vals: Vec<(usize, u64)> = Lanes(lanes)
                    .map(|l| (l, mask(self.get(w, a, l), bits)))
                    .collect();
                let same = |v: u64| {
                    vals.iter()
                        .filter(|&&(_, x)| x == v)
                        .fold(0u32, |m, &(l, _)| m | 1 << l)
                };
                let uniform = vals.iter().all(|&(_, x)| x == vals[0].1);
                for &(l, v) in &vals {
                    let r = match (all, uniform) {
                        (false, _) => same(v),
                        (true, true) => lanes,
                        (true, false) => 0,
                    };
                    self.set(w, d, l, r as u64);
                    self.set(w, p, l, uniform as u64);
                }
            }
            Op::Redux {
                op, signed, d, a, ..
            } => {
                let v = alu::redux(op, signed, Lanes(lanes).map(|l| self.get(w, a, l)));
                for l in Lanes(lanes) {
                    self.set(w, d, l, v);
                }
            }
            Op::Mma(ref m) => self.mma(w, m),
            _ => unreachable!("a warp-synchronous instruction"),
        }
        Ok(())
    }

    /// `mma` for all 32 lanes of warp `w`: every lane's fragments are read before any result is
    /// written, since `d` may name registers of `a`, `b` or `c` (`d = c` accumulates).
    fn mma(&mut self, w: usize, m: &Mma) {
        let (mut a, mut b, mut c) = ([[0; 4]; 32], [[0; 2]; 32], [[0; 4]; 32]);
        for l in 0..32 {
            a[l] = m.a.map(|s| self.get(w, s, l));
            b[l] = m.b.map(|s| self.get(w, s, l));
            c[l] = m.c.map(|s| self.get(w, s, l));
        }
        for (l, out) in alu::mma_tf32(&a, &b, &c).iter().enumerate() {
            for (&d, &v) in m.d.iter().zip(out) {
                self.set(w, d, l, v);
            }
        }
    }

    /// `shfl.sync` for the lanes that met at it: each reads `a` from the lane its mode, `b`
    /// and `c` (clamp and segment mask) pick, or its own value when that lane is out of range.
    fn shfl(&mut self, w: usize, inst: &Inst, lanes: u32) {
        let Op::Shfl {
            mode,
            d,
            p,
            a,
            b,
            c,
            ..
        } = inst.op
        else {
            unreachable!("a shfl.sync")
        };
        let mut vals = [0u64; 32];
        for l in Lanes(lanes) {
            vals[l] = self.get(w, a, l);
        }
        for l in Lanes(lanes) {
            let (bv, cv) = (self.get(w, b, l) as u32 & 0x1f, self.get(w, c, l) as u32);
            let clamp = cv & 0x1f;
            let seg = (cv >> 8) & 0x1f;
            let lane = l as u32;
            let max_lane = (lane & seg) | (clamp & !seg);
            let min_lane = lane & seg;
            let (j, ok) = match mode {
                ShflMode::Up => (lane.wrapping_sub(bv), lane >= bv && lane - bv >= max_lane),
                ShflMode::Down => (lane + bv, lane + bv <= max_lane),
                ShflMode::Bfly => (lane ^ bv, (lane ^ bv) <= max_lane),
                ShflMode::Idx => (min_lane | (bv & !seg), (min_lane | (bv & !seg)) <= max_lane),
            };
            let src = if ok { j as usize } else { l };
            if ok && lanes & (1 << src) == 0 {
                let line = inst.line;
                let what = Warning::ShuffleSource {
                    line,
                    lane: src as u32,
                };
                self.warn(what, |b| {
                    let [x, y, z] = b.tid(w, l);
                    format!(
                        "kernel {}, PTX line {line}: thread ({x},{y},{z}) shuffles from lane {src}, which does not take part (undefined value)",
                        b.ctx.prog.name
                    )
                });
            }
            let v = vals[src];
            self.set(w, d, l, v);
            self.set(w, p, l, ok as u64);
        }
    }
}

/// Copies an access of 1 to 16 bytes with fixed-size moves (no call to memmove).
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    match dst.len() {
        4 => dst[..4].copy_from_slice(&src[..4]),
        8 => dst[..8].copy_from_slice(&src[..8]),
        16 => dst[..16].copy_from_slice(&src[..16]),
        _ => dst.copy_from_slice(src),
    }
}

/// Whether the byte ranges `[a, a + a_len)` and `[b, b + b_len)` overlap.
fn overlaps(a: usize, a_len: usize, b: usize, b_len: usize) -> bool {
    a < b + b_len && b < a + a_len
}

/// `e` (with its kind and address) with the message `f` makes of its message.
fn reword(e: SimError, f: impl FnOnce(&str) -> String) -> SimError {
    let new = SimError::new(e.kind(), f(e.message()));
    match e.location().address {
        Some(a) => new.at_address(a),
        None => new,
    }
}

/// The error for a thread with `MAX_ASYNC_PENDING` copies and groups pending.
fn too_many_async() -> SimError {
    SimError::new(
        ErrorKind::Unsupported,
        format!("a thread has {MAX_ASYNC_PENDING} cp.async copies and groups pending, more than the simulator keeps (a loop that never waits?)"),
    )
}

fn bool_op(op: BoolOp, a: bool, b: bool) -> bool {
    match op {
        BoolOp::And => a && b,
        BoolOp::Or => a || b,
        BoolOp::Xor => a != b,
    }
}

fn check_align(addr: u64, len: u32) -> Result<()> {
    if !addr.is_multiple_of(len as u64) {
        return Err(SimError::new(
            ErrorKind::Misaligned,
            format!("{len}-byte access at an address that is not a multiple of {len}"),
        )
        .at_address(addr));
    }
    Ok(())
}

/// A warp-synchronous instruction and the lanes it needs, for errors: its member mask, or for
/// an `.aligned` one (`mma`) that the whole warp must execute it.
fn warp_inst(op: &Op, member: u32) -> String {
    if op.is_aligned() {
        format!(
            "{} (.aligned: all 32 lanes of the warp must execute it together)",
            op.warp_name()
        )
    } else {
        format!("{} with member mask {member:#010x}", op.warp_name())
    }
}

fn unsupported_at(inst: &Inst, what: &str) -> SimError {
    SimError::new(ErrorKind::Unsupported, what).at_line(inst.line)
}
