//! Resolves a kernel and the device functions it calls into one flat `Program`: registers
//! numbered, symbols turned into addresses, labels into instruction indices, opcodes into `Op`.

use std::collections::HashMap;

use crate::ast::{Function, Instruction, ModuleAst, Operand, Param, Space, Statement, VarDecl};
use crate::error::{Result, SimError};
use crate::host::MAX_SHARED_BYTES;
use crate::inst::*;
use crate::memory::MODULE_WINDOW;

/// A kernel ready to run: its instructions, then those of every function it calls.
#[derive(Clone, Debug)]
pub struct Program {
    /// Kernel name.
    pub name: String,
    /// Instructions; the kernel starts at 0.
    pub insts: Vec<Inst>,
    /// Number of registers.
    pub nregs: u32,
    /// Register declarations in register order, for the names in warnings.
    pub reg_names: Vec<RegNames>,
    /// Kernel parameters: name, type, offset in the parameter buffer, size in bytes.
    pub params: Vec<KernelParam>,
    /// Size of the kernel parameter buffer.
    pub param_bytes: u32,
    /// Static shared memory in bytes; dynamic shared memory starts at `dynamic_shared_offset`.
    pub static_shared: u32,
    /// Offset of `.extern .shared` arrays: the static size rounded up to their alignment (at
    /// least 16).
    pub dynamic_shared_offset: u64,
    /// Per-thread frame bytes (`.local` variables and device-function parameters).
    pub frame_bytes: u32,
    /// `.maxntid` of the kernel: a launch may have at most this product of threads a block.
    pub maxntid: Option<[u32; 3]>,
    /// `.reqntid` of the kernel: a launch must have exactly this block.
    pub reqntid: Option<[u32; 3]>,
}

impl Program {
    /// The name of register `r` as declared (`%r5` of `.reg .b32 %r<8>`).
    pub fn reg_name(&self, r: u32) -> String {
        let i = self.reg_names.partition_point(|d| d.first <= r);
        match i.checked_sub(1).map(|i| &self.reg_names[i]) {
            Some(d) if d.count.is_some() => format!("{}{}", d.name, r - d.first),
            Some(d) => d.name.clone(),
            None => format!("register {r}"),
        }
    }

    /// Bytes of shared memory a block has when launched with `dynamic` bytes of dynamic shared
    /// memory (without any, the static variables alone).
    pub fn shared_bytes(&self, dynamic: u32) -> u64 {
        if dynamic == 0 {
            self.static_shared as u64
        } else {
            self.dynamic_shared_offset + dynamic as u64
        }
    }
}

/// One register declaration: `name` alone (`count` None), or `name0` to `name{count-1}`
/// from `name<count>`, numbered from `first`. A name stands for its registers rather than
/// one string each, so a `.reg .b32 %r<65536>` stays small.
#[derive(Clone, Debug)]
pub struct RegNames {
    /// The name, or the prefix of the numbered names.
    pub name: String,
    /// Number of the first register.
    pub first: u32,
    /// How many numbered registers `name<count>` declares.
    pub count: Option<u32>,
    /// Declared `.pred`.
    pub pred: bool,
}

/// The names one `{ }` block of a function declares: variables and single registers by
/// name, numbered registers by prefix.
#[derive(Debug, Default)]
struct Scope {
    names: HashMap<String, Binding>,
    /// `prefix<count>` declarations: prefix -> (first register, count).
    numbered: HashMap<String, (u32, u32)>,
}

impl Scope {
    /// What `name` means in this scope: a name declared as such, or a numbered register
    /// (`%r12` of `%r<16>`, or of `%r1<4>`; digits after the prefix without a leading zero).
    fn get(&self, name: &str) -> Option<Binding> {
        if let Some(&b) = self.names.get(name) {
            return Some(b);
        }
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        (1..=digits).find_map(|n| {
            let (prefix, index) = name.split_at(name.len() - n);
            if index.len() > 1 && index.starts_with('0') {
                return None;
            }
            let i: u32 = index.parse().ok()?;
            let &(first, count) = self.numbered.get(prefix)?;
            (i < count).then_some(Binding::Reg(first + i))
        })
    }
}

/// One kernel parameter.
#[derive(Clone, Debug)]
pub struct KernelParam {
    /// Name as declared.
    pub name: String,
    /// Declared type.
    pub ty: Ty,
    /// Offset in the parameter buffer.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// Module-level memory: where `.global` and `.const` variables live.
#[derive(Clone, Debug, Default)]
pub struct ModuleData {
    /// Address of the module's `.global` variables in the global space.
    pub global_base: u64,
    /// Initial bytes of the `.global` variables (laid out from `global_base`).
    pub global_init: Vec<u8>,
    /// Bytes of the `.const` bank.
    pub consts: Vec<u8>,
    /// Global or const variable name -> (space, address in that space).
    pub symbols: HashMap<String, (MemSpace, u64)>,
}

/// Lays out the module's `.global` and `.const` variables.
pub fn module_data(ast: &ModuleAst, global_base: u64) -> Result<ModuleData> {
    let mut d = ModuleData {
        global_base,
        ..ModuleData::default()
    };
    for v in &ast.vars {
        let (bytes, space) = match v.space {
            Space::Global => (&mut d.global_init, MemSpace::Global),
            Space::Const => (&mut d.consts, MemSpace::Const),
            _ => continue,
        };
        let kind = format!("{:?}", v.space).to_lowercase();
        let what = format!("{kind} variable {}", v.name);
        let (off, end) = place_var(bytes.len(), v.align, v.size, &MODULE_DATA, &what)
            .map_err(|e| e.at_line(v.line))?;
        bytes.resize(off as usize, 0);
        bytes.extend_from_slice(&v.init);
        bytes.resize(end as usize, 0);
        let addr = if space == MemSpace::Global {
            global_base + off as u64
        } else {
            off as u64
        };
        d.symbols.insert(v.name.clone(), (space, addr));
    }
    Ok(d)
}

/// The most bytes an area of memory may hold, and how errors name it.
struct Limit {
    bytes: u64,
    area: &'static str,
}

/// A thread's local memory: `.local` variables and call parameters (CUDA's 512 KiB).
const LOCAL: Limit = Limit {
    bytes: 512 * 1024,
    area: "local memory and call parameters a thread may have",
};

/// A block's static shared memory.
const SHARED: Limit = Limit {
    bytes: MAX_SHARED_BYTES as u64,
    area: "static shared memory a block may have",
};

/// The kernel parameters (CUDA's limit on Volta and later since CUDA 12.1).
const PARAMS: Limit = Limit {
    bytes: 32764,
    area: "parameters a kernel may have",
};

/// The `.global` or the `.const` variables of a module (each space on its own).
const MODULE_DATA: Limit = Limit {
    bytes: MODULE_WINDOW,
    area: "a module's .global or .const data",
};

/// Most registers a kernel and the functions it calls may declare together.
const MAX_REGISTERS: u32 = 65536;

/// Places `size` bytes aligned to `align` after the `used` bytes of an area within `limit`:
/// the variable's offset and end, or an error naming the variable (`what`).
fn place_var(
    used: usize,
    align: u32,
    size: usize,
    limit: &Limit,
    what: &str,
) -> Result<(u32, u32)> {
    let off = (used as u64).checked_next_multiple_of(align.max(1) as u64);
    let end = off.and_then(|o| o.checked_add(size as u64));
    match (off, end) {
        (Some(off), Some(end)) if end <= limit.bytes => Ok((off as u32, end as u32)),
        _ => Err(bad(format!(
            "{what} ({size} bytes, {used} placed before it) does not fit in the {} bytes of {}",
            limit.bytes, limit.area
        ))),
    }
}

#[derive(Clone, Copy, Debug)]
enum Binding {
    Reg(u32),
    Addr(MemSpace, u64),
    /// A `.param` variable in the frame: its offset and size in bytes.
    Param(u32, u32),
    Func(usize),
}

impl Binding {
    /// The state space and address of a variable.
    fn address(self) -> Option<(MemSpace, u64)> {
        match self {
            Binding::Addr(space, a) => Some((space, a)),
            Binding::Param(off, _) => Some((MemSpace::FrameParam, off as u64)),
            Binding::Reg(_) | Binding::Func(_) => None,
        }
    }
}

/// A parameter or return slot of a device function in the frame.
struct Slot {
    name: String,
    off: u32,
    size: u32,
}

/// Where a function starts, where its parameter and return slots are in the frame, and the
/// shared-memory offsets of the `.shared` variables its body declares (in order).
struct FuncLayout {
    start: u32,
    params: Vec<Slot>,
    returns: Vec<Slot>,
    shared: Vec<u32>,
}

/// Builds the program of entry `name`.
pub fn build_program(ast: &ModuleAst, data: &ModuleData, name: &str) -> Result<Program> {
    let funcs: HashMap<&str, usize> = ast
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.as_str(), i))
        .collect();
    let entry = *funcs
        .get(name)
        .filter(|&&i| ast.functions[i].is_entry)
        .ok_or_else(|| SimError::launch(format!("no kernel named {name:?} in the module")))?;
    let order = reachable(ast, &funcs, entry)?;

    let mut b = Builder {
        prog: Program {
            name: name.to_string(),
            insts: Vec::new(),
            nregs: 0,
            reg_names: Vec::new(),
            params: Vec::new(),
            param_bytes: 0,
            static_shared: 0,
            dynamic_shared_offset: 0,
            frame_bytes: 0,
            maxntid: ast.functions[entry].maxntid,
            reqntid: ast.functions[entry].reqntid,
        },
        globals: HashMap::new(),
        layouts: HashMap::new(),
    };
    for (sym, &(space, addr)) in &data.symbols {
        b.globals.insert(sym.clone(), Binding::Addr(space, addr));
    }
    for (i, f) in ast.functions.iter().enumerate() {
        b.globals.insert(f.name.clone(), Binding::Func(i));
    }
    b.kernel_params(&ast.functions[entry])?;
    // Every address is known before any instruction is decoded: static shared memory holds
    // the module's variables, then those of the function bodies; dynamic shared memory
    // follows it.
    for v in ast
        .vars
        .iter()
        .filter(|v| v.space == Space::Shared && !v.dynamic)
    {
        let off = b.shared_alloc(v)?;
        b.globals
            .insert(v.name.clone(), Binding::Addr(MemSpace::Shared, off as u64));
    }
    let mut pc = 0u32;
    for &fi in &order {
        let f = &ast.functions[fi];
        let layout = b.func_layout(f, pc)?;
        b.layouts.insert(fi, layout);
        pc += f
            .body
            .iter()
            .flatten()
            .filter(|s| matches!(s, Statement::Inst(_)))
            .count() as u32;
    }
    b.dynamic_shared(ast);
    for &fi in &order {
        b.function(ast, fi)?;
    }
    Ok(b.prog)
}

/// The entry first, then every function it calls (directly or not), each once: one
/// depth-first walk of the call graph, which finds recursion as a call to a function still on
/// the path.
fn reachable(ast: &ModuleAst, funcs: &HashMap<&str, usize>, entry: usize) -> Result<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Visit {
        New,
        OnPath,
        Done,
    }
    let mut visit = vec![Visit::New; ast.functions.len()];
    visit[entry] = Visit::OnPath;
    let mut order = vec![entry];
    let mut path = vec![(entry, calls(&ast.functions[entry]))];
    while let Some((f, callees)) = path.last_mut() {
        let Some((inst, callee)) = callees.next() else {
            visit[*f] = Visit::Done;
            path.pop();
            continue;
        };
        let ci = callable(ast, funcs, callee).map_err(|e| e.at_line(inst.line))?;
        match visit[ci] {
            Visit::OnPath => {
                return Err(
                    unsupported(format!("recursive call to {callee} is not supported"))
                        .at_line(inst.line),
                )
            }
            Visit::Done => {}
            Visit::New => {
                visit[ci] = Visit::OnPath;
                order.push(ci);
                path.push((ci, calls(&ast.functions[ci])));
            }
        }
    }
    Ok(order)
}

/// The index of `callee`, a `.func` with a body in the module; an error naming it otherwise.
fn callable(ast: &ModuleAst, funcs: &HashMap<&str, usize>, callee: &str) -> Result<usize> {
    let Some(&ci) = funcs.get(callee) else {
        return Err(unsupported(format!(
            "call to unknown function {callee} (indirect calls are not supported)"
        )));
    };
    let f = &ast.functions[ci];
    if f.is_entry {
        return Err(bad(format!(
            "call to {callee}, which is an .entry (a kernel): only a .func may be called"
        )));
    }
    if f.body.is_none() {
        let what = match callee {
            "vprintf" => "printf (a call to vprintf)".to_string(),
            "__assertfail" => "a failed assert (a call to __assertfail)".to_string(),
            "malloc" | "free" => format!("device-side {callee}"),
            _ => format!("a call to {callee}"),
        };
        return Err(unsupported(format!(
            "{what} is not supported: {callee} is an external function with no body in this module"
        )));
    }
    Ok(ci)
}

/// The `call` instructions of `f` and the name each calls (its first plain name operand, as in
/// `call (ret), f, (args)`; a register for an indirect call).
fn calls(f: &Function) -> impl Iterator<Item = (&Instruction, &str)> {
    f.body.iter().flatten().filter_map(|s| match s {
        Statement::Inst(inst) if inst.opcode[0] == "call" => {
            let callee = inst.operands.iter().find_map(|o| match o {
                Operand::Name(n) => Some(n.as_str()),
                _ => None,
            })?;
            Some((inst, callee))
        }
        _ => None,
    })
}

struct Builder {
    prog: Program,
    globals: HashMap<String, Binding>,
    layouts: HashMap<usize, FuncLayout>,
}

impl Builder {
    /// Places `size` bytes of the variable `what` in the frame; returns its offset.
    fn frame_alloc(&mut self, align: u32, size: usize, what: &str) -> Result<u32> {
        let used = self.prog.frame_bytes as usize;
        let (off, end) = place_var(used, align, size, &LOCAL, what)?;
        self.prog.frame_bytes = end;
        Ok(off)
    }

    /// Places a static `.shared` variable; returns its offset.
    fn shared_alloc(&mut self, v: &VarDecl) -> Result<u32> {
        let used = self.prog.static_shared as usize;
        let what = format!("shared variable {}", v.name);
        let (off, end) =
            place_var(used, v.align, v.size, &SHARED, &what).map_err(|e| e.at_line(v.line))?;
        self.prog.static_shared = end;
        Ok(off)
    }

    /// Lays out the kernel parameter buffer.
    fn kernel_params(&mut self, kernel: &Function) -> Result<()> {
        for p in &kernel.params {
            let used = self.prog.param_bytes as usize;
            let what = format!("parameter {} of {}", p.name, kernel.name);
            let (off, end) = place_var(used, p.align, p.size, &PARAMS, &what)?;
            self.prog.params.push(KernelParam {
                name: p.name.clone(),
                ty: p.ty,
                offset: off,
                size: end - off,
            });
            self.prog.param_bytes = end;
        }
        Ok(())
    }

    /// Places the parameter and return slots of function `f` (starting at instruction
    /// `start`) in the frame, and the `.shared` variables of its body.
    fn func_layout(&mut self, f: &Function, start: u32) -> Result<FuncLayout> {
        let mut slots = |params: &[Param]| -> Result<Vec<Slot>> {
            params
                .iter()
                .map(|p| {
                    let what = format!("parameter {} of {}", p.name, f.name);
                    Ok(Slot {
                        name: p.name.clone(),
                        off: self.frame_alloc(p.align, p.size, &what)?,
                        size: p.size as u32,
                    })
                })
                .collect()
        };
        let (params, returns) = if f.is_entry {
            (Vec::new(), Vec::new())
        } else {
            (slots(&f.params)?, slots(&f.returns)?)
        };
        let shared = f
            .body
            .iter()
            .flatten()
            .filter_map(|s| match s {
                Statement::Var(v) if v.space == Space::Shared => Some(self.shared_alloc(v)),
                _ => None,
            })
            .collect::<Result<_>>()?;
        Ok(FuncLayout {
            start,
            params,
            returns,
            shared,
        })
    }

    /// Binds the `.extern .shared` arrays (dynamic shared memory, all at one address) past the
    /// static shared memory, at their alignment and at least 16.
    fn dynamic_shared(&mut self, ast: &ModuleAst) {
        let dynamic = || {
            ast.vars
                .iter()
                .filter(|v| v.space == Space::Shared && v.dynamic)
        };
        let align = dynamic().map(|v| v.align).fold(16, u32::max);
        let off = (self.prog.static_shared as u64).next_multiple_of(align as u64);
        self.prog.dynamic_shared_offset = off;
        for v in dynamic() {
            self.globals
                .insert(v.name.clone(), Binding::Addr(MemSpace::Shared, off));
        }
    }

    /// Declares register `name` (`count` None) or `name0` to `name{count-1}` in `scope`,
    /// within `MAX_REGISTERS` in all.
    fn declare_regs(
        &mut self,
        scope: &mut Scope,
        name: &str,
        count: Option<u32>,
        pred: bool,
    ) -> Result<()> {
        let total = self.prog.nregs as u64 + count.unwrap_or(1) as u64;
        if total > MAX_REGISTERS as u64 {
            let shown = count.map_or(name.to_string(), |c| format!("{name}<{c}>"));
            return Err(bad(format!(
                "registers {shown} make {total} in all, more than the {MAX_REGISTERS} a kernel may declare"
            )));
        }
        let first = self.prog.nregs;
        match count {
            None => {
                scope.names.insert(name.to_string(), Binding::Reg(first));
            }
            Some(c) => {
                scope.numbered.insert(name.to_string(), (first, c));
            }
        }
        if count != Some(0) {
            self.prog.reg_names.push(RegNames {
                name: name.to_string(),
                first,
                count,
                pred,
            });
        }
        self.prog.nregs = total as u32;
        Ok(())
    }

    /// Places a `.local` or `.param` variable of a function body in the frame.
    fn frame_var(&mut self, v: &VarDecl) -> Result<Binding> {
        match v.space {
            Space::Local => {
                let off =
                    self.frame_alloc(v.align, v.size, &format!("local variable {}", v.name))?;
                Ok(Binding::Addr(MemSpace::Local, off as u64))
            }
            Space::Param => {
                let off =
                    self.frame_alloc(v.align, v.size, &format!("parameter variable {}", v.name))?;
                Ok(Binding::Param(off, v.size as u32))
            }
            _ => Err(bad(format!(
                "{:?} variable {} inside a function",
                v.space, v.name
            ))),
        }
    }

    fn function(&mut self, ast: &ModuleAst, fi: usize) -> Result<()> {
        let f: &Function = &ast.functions[fi];
        let layout = &self.layouts[&fi];
        let start = layout.start;
        let mut shared_offsets = layout.shared.clone().into_iter();
        let mut scopes = vec![Scope::default()];
        if f.is_entry {
            for p in &self.prog.params {
                scopes[0].names.insert(
                    p.name.clone(),
                    Binding::Addr(MemSpace::KernelParam, p.offset as u64),
                );
            }
        } else {
            for slot in layout.params.iter().chain(&layout.returns) {
                scopes[0]
                    .names
                    .insert(slot.name.clone(), Binding::Param(slot.off, slot.size));
            }
        }
        let body = f.body.as_deref().unwrap_or_default();
        let mut labels = HashMap::new();
        let mut tables = HashMap::new();
        let mut count = start;
        for s in body {
            match s {
                Statement::Inst(_) => count += 1,
                Statement::Label(name) => {
                    labels.insert(name.clone(), count);
                }
                Statement::BranchTargets { name, labels } => {
                    tables.insert(name.clone(), labels.clone());
                }
                _ => {}
            }
        }
        for s in body {
            match s {
                Statement::Open => scopes.push(Scope::default()),
                Statement::Close => {
                    scopes.pop();
                }
                Statement::Label(_) | Statement::BranchTargets { .. } => {}
                Statement::Reg { names, pred } => {
                    let scope = scopes.last_mut().expect("a function has a scope");
                    for (name, count) in names {
                        self.declare_regs(scope, name, *count, *pred)?;
                    }
                }
                Statement::Var(v) => {
                    let binding = match v.space {
                        Space::Shared => Binding::Addr(
                            MemSpace::Shared,
                            shared_offsets.next().expect("laid out by func_layout") as u64,
                        ),
                        _ => self.frame_var(v).map_err(|e| e.at_line(v.line))?,
                    };
                    scopes
                        .last_mut()
                        .expect("a function has a scope")
                        .names
                        .insert(v.name.clone(), binding);
                }
                Statement::Inst(inst) => {
                    let ctx = Ctx {
                        scopes: &scopes,
                        globals: &self.globals,
                        labels: &labels,
                        tables: &tables,
                        layouts: &self.layouts,
                        reg_names: &self.prog.reg_names,
                        is_entry: f.is_entry,
                    };
                    let mut uses = Vec::new();
                    let decoded =
                        decode(&ctx, inst, &mut uses).map_err(|e| e.at_line(inst.line))?;
                    let guard = match &inst.guard {
                        None => None,
                        Some((neg, name)) => match ctx.lookup(name) {
                            Some(Binding::Reg(r)) => Some((r, *neg)),
                            _ => {
                                return Err(SimError::parse(
                                    inst.line,
                                    format!("guard {name} is not a declared predicate register"),
                                ))
                            }
                        },
                    };
                    uses.sort_unstable();
                    uses.dedup();
                    self.prog.insts.push(Inst {
                        line: inst.line,
                        guard,
                        op: decoded,
                        uses,
                    });
                }
            }
        }
        Ok(())
    }
}

struct Ctx<'a> {
    scopes: &'a [Scope],
    globals: &'a HashMap<String, Binding>,
    labels: &'a HashMap<String, u32>,
    /// `.branchtargets` lists of the function, by their label.
    tables: &'a HashMap<String, Vec<String>>,
    layouts: &'a HashMap<usize, FuncLayout>,
    /// The registers declared so far, for their types.
    reg_names: &'a [RegNames],
    is_entry: bool,
}

fn unsupported(msg: impl Into<String>) -> SimError {
    SimError::new(crate::ErrorKind::Unsupported, msg)
}

fn bad(msg: impl Into<String>) -> SimError {
    SimError::new(crate::ErrorKind::Parse, msg)
}

impl Ctx<'_> {
    /// Whether register `r` was declared `.pred`.
    fn is_pred(&self, r: u32) -> bool {
        self.reg_names
            .iter()
            .any(|n| n.pred && (n.first..n.first + n.count.unwrap_or(1)).contains(&r))
    }

    fn lookup(&self, name: &str) -> Option<Binding> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.get(name))
            .or_else(|| self.globals.get(name).copied())
    }

    fn reg(&self, name: &str, uses: &mut Vec<u32>) -> Result<u32> {
        match self.lookup(name) {
            Some(Binding::Reg(r)) => {
                uses.push(r);
                Ok(r)
            }
            _ => Err(bad(format!("{name} is not a declared register"))),
        }
    }

    /// A source operand of type `ty`.
    fn src(&self, o: &Operand, ty: Ty, uses: &mut Vec<u32>) -> Result<Src> {
        Ok(match o {
            Operand::Name(n) => {
                if let Some(s) = special(n) {
                    return Ok(Src::Special(s));
                }
                match self.lookup(n) {
                    Some(Binding::Reg(r)) => {
                        uses.push(r);
                        Src::Reg(r)
                    }
                    Some(Binding::Addr(_, a)) => Src::Imm(a),
                    Some(Binding::Param(off, _)) => Src::Imm(off as u64),
                    Some(Binding::Func(_)) => {
                        return Err(unsupported(format!("function address {n} as a value")))
                    }
                    None => return Err(bad(format!("unknown name {n}"))),
                }
            }
            Operand::Int(v) => Src::Imm(imm_int(*v, ty)),
            Operand::F32(_) | Operand::F64(_) if ty.halves().is_some() => {
                return Err(bad(format!(
                    "float literal {o:?} as an operand of type {ty:?} (write the 16-bit pattern as an integer, e.g. 0x3C00)"
                )))
            }
            Operand::F32(b) => Src::Imm(match ty {
                Ty::F64 => (f32::from_bits(*b) as f64).to_bits(),
                _ => *b as u64,
            }),
            Operand::F64(b) => Src::Imm(match ty {
                Ty::F32 => (f64::from_bits(*b) as f32).to_bits() as u64,
                _ => *b,
            }),
            other => {
                return Err(bad(format!(
                    "expected a register or immediate, found {other:?}"
                )))
            }
        })
    }

    fn dst(&self, o: &Operand, uses: &mut Vec<u32>) -> Result<Dst> {
        match o {
            Operand::Name(n) if n == "_" => Ok(SINK),
            Operand::Name(n) => {
                let r = self.reg(n, uses)?;
                uses.pop();
                Ok(r)
            }
            other => Err(bad(format!(
                "expected a destination register, found {other:?}"
            ))),
        }
    }

    /// An address operand and the space its symbol lives in (if it names one).
    fn addr(&self, o: &Operand, uses: &mut Vec<u32>) -> Result<(Addr, Option<MemSpace>)> {
        let Operand::Addr(base, offset) = o else {
            return Err(bad(format!("expected an address [..], found {o:?}")));
        };
        Ok(match base {
            None => (
                Addr {
                    base: None,
                    offset: *offset,
                },
                None,
            ),
            Some(n) => match self.lookup(n) {
                Some(Binding::Reg(r)) => {
                    uses.push(r);
                    (
                        Addr {
                            base: Some(r),
                            offset: *offset,
                        },
                        None,
                    )
                }
                other => {
                    let (space, a) = other
                        .and_then(Binding::address)
                        .ok_or_else(|| bad(format!("unknown address base {n}")))?;
                    (
                        Addr {
                            base: None,
                            offset: (a as i64).wrapping_add(*offset),
                        },
                        Some(space),
                    )
                }
            },
        })
    }
}

/// An integer immediate as the bits of type `ty`.
fn imm_int(v: i64, ty: Ty) -> u64 {
    match ty {
        Ty::F32 => (v as f32).to_bits() as u64,
        Ty::F64 => (v as f64).to_bits(),
        Ty::Pred => (v != 0) as u64,
        _ => mask(v as u64, ty.bits()),
    }
}

/// The low `bits` bits of `v`.
pub fn mask(v: u64, bits: u32) -> u64 {
    if bits >= 64 {
        v
    } else {
        v & ((1u64 << bits) - 1)
    }
}

fn special(name: &str) -> Option<Special> {
    let axis = |s: &str| match s {
        "x" => Some(0u8),
        "y" => Some(1),
        "z" => Some(2),
        _ => None,
    };
    if let Some((reg, ax)) = name.split_once('.') {
        let a = axis(ax)?;
        return Some(match reg {
            "%tid" => Special::Tid(a),
            "%ntid" => Special::Ntid(a),
            "%ctaid" => Special::Ctaid(a),
            "%nctaid" => Special::Nctaid(a),
            _ => return None,
        });
    }
    Some(match name {
        "%laneid" => Special::Laneid,
        "%warpid" => Special::Warpid,
        "%nwarpid" => Special::Nwarpid,
        "%clock" | "%clock64" | "%globaltimer" | "%globaltimer_lo" => Special::Clock,
        "%lanemask_eq" => Special::Lanemask(Cmp::Eq),
        "%lanemask_lt" => Special::Lanemask(Cmp::Lt),
        "%lanemask_le" => Special::Lanemask(Cmp::Le),
        "%lanemask_gt" => Special::Lanemask(Cmp::Gt),
        "%lanemask_ge" => Special::Lanemask(Cmp::Ge),
        "%smid" | "%nsmid" | "%gridid" => Special::Zero,
        _ => return None,
    })
}

/// Modifier words of an opcode (everything after the first part).
struct Mods<'a>(&'a [String]);

impl Mods<'_> {
    fn has(&self, m: &str) -> bool {
        self.0.iter().any(|w| w == m)
    }

    /// Types among the modifiers, in order.
    fn types(&self) -> Vec<Ty> {
        self.0.iter().filter_map(|w| Ty::parse(w)).collect()
    }

    fn ty(&self) -> Result<Ty> {
        self.types()
            .last()
            .copied()
            .ok_or_else(|| bad("instruction has no type"))
    }

    fn float(&self) -> FloatMods {
        let rnd = if self.has("rz") {
            Rnd::Rz
        } else if self.has("rm") {
            Rnd::Rm
        } else if self.has("rp") {
            Rnd::Rp
        } else if self.has("rni") {
            Rnd::Int(IntRnd::N)
        } else if self.has("rzi") {
            Rnd::Int(IntRnd::Z)
        } else if self.has("rmi") {
            Rnd::Int(IntRnd::M)
        } else if self.has("rpi") {
            Rnd::Int(IntRnd::P)
        } else {
            Rnd::Rn
        };
        FloatMods {
            rnd,
            ftz: self.has("ftz"),
            sat: self.has("sat"),
            approx: self.has("approx"),
            relu: self.has("relu"),
            nan: self.has("NaN"),
            satfinite: self.has("satfinite"),
        }
    }

    fn space(&self) -> MemSpace {
        for w in self.0 {
            match w.as_str() {
                "global" => return MemSpace::Global,
                "shared" | "shared::cta" => return MemSpace::Shared,
                "local" => return MemSpace::Local,
                "const" => return MemSpace::Const,
                "param" => return MemSpace::KernelParam,
                _ => {}
            }
        }
        MemSpace::Generic
    }

    /// The vector width of instruction `name` of element type `ty`: 1, or 2 or 4 for `.v2`
    /// and `.v4`. Any other `.vN` is an error: `.v8` (a 256-bit access of 32-bit elements, PTX
    /// ISA 8.8 on sm_100 and later) is unsupported, the rest are not PTX.
    fn vector(&self, name: &str, ty: Ty) -> Result<usize> {
        let mut n = 1;
        for w in self.0 {
            let Some(digits) = w.strip_prefix('v') else {
                continue;
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            n = match digits {
                "2" => 2,
                "4" => 4,
                "8" if ty.bytes() == 4 => {
                    return Err(unsupported(format!(
                        "instruction {name}: vector width .v8 (a 256-bit access, PTX ISA 8.8 on sm_100 and later) is not supported; the supported widths are .v2 and .v4"
                    )))
                }
                _ => {
                    return Err(bad(format!(
                        "instruction {name}: .{w} is not a valid vector width here; PTX has .v2 and .v4 (and .v8 for 32-bit types only, PTX ISA 8.8 on sm_100 and later)"
                    )))
                }
            };
        }
        Ok(n)
    }

    fn cmp(&self) -> Option<Cmp> {
        self.0.iter().find_map(|w| cmp_word(w))
    }

    fn bool_op(&self) -> Option<BoolOp> {
        self.0.iter().find_map(|w| match w.as_str() {
            "and" => Some(BoolOp::And),
            "or" => Some(BoolOp::Or),
            "xor" => Some(BoolOp::Xor),
            _ => None,
        })
    }
}

fn cmp_word(w: &str) -> Option<Cmp> {
    Some(match w {
        "eq" => Cmp::Eq,
        "ne" => Cmp::Ne,
        "lt" | "lo" => Cmp::Lt,
        "le" | "ls" => Cmp::Le,
        "gt" | "hi" => Cmp::Gt,
        "ge" | "hs" => Cmp::Ge,
        "equ" => Cmp::Equ,
        "neu" => Cmp::Neu,
        "ltu" => Cmp::Ltu,
        "leu" => Cmp::Leu,
        "gtu" => Cmp::Gtu,
        "geu" => Cmp::Geu,
        "num" => Cmp::Num,
        "nan" => Cmp::Nan,
        _ => return None,
    })
}

fn operands(inst: &Instruction, n: usize) -> Result<&[Operand]> {
    if inst.operands.len() != n {
        return Err(bad(format!(
            "{} takes {n} operands, found {}",
            inst.opcode.join("."),
            inst.operands.len()
        )));
    }
    Ok(&inst.operands)
}

/// PTX types the interpreter has no arithmetic for; an instruction using one is unsupported
/// (rather than misread as having no type).
const UNSUPPORTED_TYPES: &[&str] = &[
    "b128", "tf32", "e4m3", "e5m2", "e4m3x2", "e5m2x2", "e4m3x4", "e5m2x4", "e2m1x2", "e2m3x2",
    "e3m2x2", "ue8m0x2", "e2m1", "e2m3", "e3m2", "ue8m0", "s4", "u4", "b1", "f8x4", "f16x4",
    "bf16x4", "u16x2", "s16x2",
];

/// Decodes one instruction.
fn decode(ctx: &Ctx, inst: &Instruction, uses: &mut Vec<u32>) -> Result<Op> {
    let name = inst.opcode.join(".");
    let head = inst.opcode[0].as_str();
    let m = Mods(&inst.opcode[1..]);
    let o = &inst.operands;
    let unknown = || unsupported(format!("instruction {name} is not supported"));
    // `.tf32` is a type only `cvt` (to it) and `mma` (of it) have; they check its forms.
    let tf32_ok = matches!(head, "cvt" | "mma");
    let unsupported_type =
        |w: &&String| UNSUPPORTED_TYPES.contains(&w.as_str()) && !(tf32_ok && *w == "tf32");
    if let Some(t) = m.0.iter().find(unsupported_type) {
        return Err(unsupported(format!(
            "instruction {name}: type .{t} is not supported"
        )));
    }
    Ok(match head {
        "mov" => {
            let ty = m.ty()?;
            let [d, a] = operands(inst, 2)? else {
                unreachable!()
            };
            match (d, a) {
                (Operand::Vector(ds), _) => {
                    let bits = part_bits(ty, ds.len())?;
                    let ds = ds.iter().map(|x| ctx.dst(x, uses)).collect::<Result<_>>()?;
                    Op::Unpack {
                        ds,
                        a: ctx.src(a, ty, uses)?,
                        bits,
                    }
                }
                (_, Operand::Vector(parts)) => {
                    let bits = part_bits(ty, parts.len())?;
                    let part_ty = Ty::B(bits as u8);
                    let parts = parts
                        .iter()
                        .map(|x| ctx.src(x, part_ty, uses))
                        .collect::<Result<_>>()?;
                    Op::Pack {
                        d: ctx.dst(d, uses)?,
                        parts,
                        bits,
                    }
                }
                _ => Op::Mov {
                    d: ctx.dst(d, uses)?,
                    a: ctx.src(a, ty, uses)?,
                    bits: ty.bits().max(1),
                },
            }
        }
        "cvta" => {
            let ty = m.ty()?;
            let [d, a] = operands(inst, 2)? else {
                unreachable!()
            };
            let space = m.space();
            let to_generic = !m.has("to");
            let (d, a) = (ctx.dst(d, uses)?, ctx.src(a, ty, uses)?);
            if space == MemSpace::Global {
                Op::Mov {
                    d,
                    a,
                    bits: ty.bits(),
                }
            } else {
                Op::Cvta {
                    d,
                    a,
                    space,
                    to_generic,
                    bits: ty.bits(),
                }
            }
        }
        "add" | "sub" | "mul" | "mul24" | "div" | "rem" | "min" | "max" | "and" | "or" | "xor"
        | "shl" | "shr" | "copysign" => {
            if m.has("cc") || m.has("xorsign") || (m.has("relu") && m.ty()?.halves().is_none()) {
                return Err(unknown());
            }
            let ty = m.ty()?;
            let [d, a, b] = operands(inst, 3)? else {
                unreachable!()
            };
            if ty == Ty::Pred {
                let op = match head {
                    "and" => BoolOp::And,
                    "or" => BoolOp::Or,
                    "xor" => BoolOp::Xor,
                    _ => return Err(unknown()),
                };
                return Ok(Op::PredLogic {
                    op: Some(op),
                    d: ctx.dst(d, uses)?,
                    a: ctx.src(a, ty, uses)?,
                    b: ctx.src(b, ty, uses)?,
                });
            }
            if ty.is_float() {
                let op = match head {
                    "add" => FloatOp::Add,
                    "sub" => FloatOp::Sub,
                    "mul" => FloatOp::Mul,
                    "div" => FloatOp::Div,
                    "min" => FloatOp::Min,
                    "max" => FloatOp::Max,
                    "copysign" => FloatOp::Copysign,
                    _ => return Err(unknown()),
                };
                let half_ok = matches!(
                    op,
                    FloatOp::Add | FloatOp::Sub | FloatOp::Mul | FloatOp::Min | FloatOp::Max
                );
                if ty.halves().is_some() && !half_ok {
                    return Err(unsupported(format!(
                        "instruction {name}: {head} has no f16/bf16 form"
                    )));
                }
                let (d, a, b) = (
                    ctx.dst(d, uses)?,
                    ctx.src(a, ty, uses)?,
                    ctx.src(b, ty, uses)?,
                );
                return Ok(Op::Float {
                    op,
                    ty,
                    m: m.float(),
                    d,
                    a,
                    b,
                });
            }
            let op = match head {
                "add" => IntOp::Add,
                "sub" => IntOp::Sub,
                "mul24" if m.has("hi") => IntOp::Mul24Hi,
                "mul24" => IntOp::Mul24Lo,
                "mul" if m.has("hi") => IntOp::MulHi,
                "mul" if m.has("wide") => {
                    check_wide(ty)?;
                    IntOp::MulWide
                }
                "mul" => IntOp::MulLo,
                "div" => IntOp::Div,
                "rem" => IntOp::Rem,
                "min" => IntOp::Min,
                "max" => IntOp::Max,
                "and" => IntOp::And,
                "or" => IntOp::Or,
                "xor" => IntOp::Xor,
                "shl" => IntOp::Shl,
                "shr" => IntOp::Shr,
                _ => return Err(unknown()),
            };
            let bty = if matches!(op, IntOp::Shl | IntOp::Shr) {
                Ty::U(32)
            } else {
                ty
            };
            let (d, a, b) = (
                ctx.dst(d, uses)?,
                ctx.src(a, ty, uses)?,
                ctx.src(b, bty, uses)?,
            );
            Op::Int {
                op,
                ty,
                d,
                a,
                b,
                sat: m.has("sat"),
            }
        }
        "not" | "cnot" | "neg" | "abs" | "popc" | "clz" | "brev" | "bfind" => {
            let ty = m.ty()?;
            let [d, a] = operands(inst, 2)? else {
                unreachable!()
            };
            let (dd, aa) = (ctx.dst(d, uses)?, ctx.src(a, ty, uses)?);
            if ty == Ty::Pred && head == "not" {
                return Ok(Op::PredLogic {
                    op: None,
                    d: dd,
                    a: aa,
                    b: aa,
                });
            }
            if ty.is_float() {
                let op = match head {
                    "neg" => FloatUnary::Neg,
                    "abs" => FloatUnary::Abs,
                    _ => return Err(unknown()),
                };
                return Ok(Op::FloatUn {
                    op,
                    ty,
                    m: m.float(),
                    d: dd,
                    a: aa,
                });
            }
            let op = match head {
                "not" => IntUnary::Not,
                "cnot" => IntUnary::Cnot,
                "neg" => IntUnary::Neg,
                "abs" => IntUnary::Abs,
                "popc" => IntUnary::Popc,
                "clz" => IntUnary::Clz,
                "brev" => IntUnary::Brev,
                _ => IntUnary::Bfind {
                    shiftamt: m.has("shiftamt"),
                },
            };
            Op::IntUn {
                op,
                ty,
                d: dd,
                a: aa,
            }
        }
        "sqrt" | "rsqrt" | "rcp" | "ex2" | "lg2" | "sin" | "cos" | "tanh" => {
            let ty = m.ty()?;
            let half_ok = matches!(head, "ex2" | "tanh");
            if !(matches!(ty, Ty::F32 | Ty::F64) || half_ok && ty.halves().is_some()) {
                return Err(unsupported(format!(
                    "instruction {name}: this type is not supported"
                )));
            }
            let [d, a] = operands(inst, 2)? else {
                unreachable!()
            };
            let op = match head {
                "sqrt" => FloatUnary::Sqrt,
                "rsqrt" => FloatUnary::Rsqrt,
                "rcp" => FloatUnary::Rcp,
                "ex2" => FloatUnary::Ex2,
                "lg2" => FloatUnary::Lg2,
                "sin" => FloatUnary::Sin,
                "cos" => FloatUnary::Cos,
                _ => FloatUnary::Tanh,
            };
            Op::FloatUn {
                op,
                ty,
                m: m.float(),
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, ty, uses)?,
            }
        }
        "mad" | "fma" | "mad24" => {
            let ty = m.ty()?;
            let [d, a, b, c] = operands(inst, 4)? else {
                unreachable!()
            };
            if ty.is_float() {
                if ty.halves().is_some() && head != "fma" {
                    return Err(unknown());
                }
                let (d, a, b, c) = (
                    ctx.dst(d, uses)?,
                    ctx.src(a, ty, uses)?,
                    ctx.src(b, ty, uses)?,
                    ctx.src(c, ty, uses)?,
                );
                return Ok(Op::Fma {
                    ty,
                    m: m.float(),
                    d,
                    a,
                    b,
                    c,
                });
            }
            if m.has("cc") || m.has("sat") {
                return Err(unknown());
            }
            let mode = if head == "mad24" {
                if m.has("hi") {
                    IntOp::Mul24Hi
                } else {
                    IntOp::Mul24Lo
                }
            } else if m.has("hi") {
                IntOp::MulHi
            } else if m.has("wide") {
                check_wide(ty)?;
                IntOp::MulWide
            } else {
                IntOp::MulLo
            };
            let cty = if mode == IntOp::MulWide { wide(ty) } else { ty };
            let (d, a, b, c) = (
                ctx.dst(d, uses)?,
                ctx.src(a, ty, uses)?,
                ctx.src(b, ty, uses)?,
                ctx.src(c, cty, uses)?,
            );
            Op::Mad {
                mode,
                ty,
                d,
                a,
                b,
                c,
            }
        }
        "sad" => {
            let ty = m.ty()?;
            let [d, a, b, c] = operands(inst, 4)? else {
                unreachable!()
            };
            Op::Sad {
                ty,
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, ty, uses)?,
                b: ctx.src(b, ty, uses)?,
                c: ctx.src(c, ty, uses)?,
            }
        }
        "testp" => {
            let ty = m.ty()?;
            let kind = [
                "finite",
                "infinite",
                "number",
                "notanumber",
                "normal",
                "subnormal",
            ]
            .iter()
            .position(|k| m.has(k))
            .ok_or_else(unknown)? as u8;
            let [d, a] = operands(inst, 2)? else {
                unreachable!()
            };
            Op::Testp {
                kind,
                ty,
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, ty, uses)?,
            }
        }
        "setp" => {
            let cmp = m.cmp().ok_or_else(unknown)?;
            let ty = m.ty()?;
            if ty == Ty::Pred {
                return Err(unsupported(format!(
                    "instruction {name}: type not supported"
                )));
            }
            let (d, d2) = match o.first() {
                Some(Operand::Pair(p, q)) => (
                    ctx.dst(&Operand::Name(p.clone()), uses)?,
                    ctx.dst(&Operand::Name(q.clone()), uses)?,
                ),
                Some(x) => (ctx.dst(x, uses)?, SINK),
                None => return Err(bad("setp without operands")),
            };
            let a = ctx.src(o.get(1).ok_or_else(|| bad("setp needs a, b"))?, ty, uses)?;
            let b = ctx.src(o.get(2).ok_or_else(|| bad("setp needs a, b"))?, ty, uses)?;
            let comb = match (m.bool_op(), o.get(3)) {
                (Some(op), Some(Operand::Not(p))) => Some((op, Src::Reg(ctx.reg(p, uses)?), true)),
                (Some(op), Some(c)) => Some((op, ctx.src(c, Ty::Pred, uses)?, false)),
                (None, None) => None,
                _ => {
                    return Err(bad(
                        "setp: a boolean operation needs a predicate c and vice versa",
                    ))
                }
            };
            Op::Setp {
                cmp,
                ty,
                ftz: m.has("ftz"),
                d,
                d2,
                a,
                b,
                comb,
            }
        }
        "set" => {
            let cmp = m.cmp().ok_or_else(unknown)?;
            let tys = m.types();
            let [dty, sty] = tys[..] else {
                return Err(bad("set needs a destination and source type"));
            };
            if m.bool_op().is_some() {
                return Err(unknown());
            }
            let [d, a, b] = operands(inst, 3)? else {
                unreachable!()
            };
            if matches!(dty, Ty::F64 | Ty::Pred) || sty == Ty::Pred {
                return Err(unsupported(format!(
                    "instruction {name}: these types are not supported"
                )));
            }
            Op::Set {
                cmp,
                ty: sty,
                dty,
                ftz: m.has("ftz"),
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, sty, uses)?,
                b: ctx.src(b, sty, uses)?,
            }
        }
        "selp" => {
            let ty = m.ty()?;
            let [d, a, b, c] = operands(inst, 4)? else {
                unreachable!()
            };
            Op::Selp {
                bits: ty.bits(),
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, ty, uses)?,
                b: ctx.src(b, ty, uses)?,
                c: ctx.src(c, Ty::Pred, uses)?,
            }
        }
        "slct" => {
            let tys = m.types();
            let [ty, cty] = tys[..] else {
                return Err(bad("slct needs two types"));
            };
            let [d, a, b, c] = operands(inst, 4)? else {
                unreachable!()
            };
            Op::Slct {
                bits: ty.bits(),
                cty,
                ftz: m.has("ftz"),
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, ty, uses)?,
                b: ctx.src(b, ty, uses)?,
                c: ctx.src(c, cty, uses)?,
            }
        }
        "cvt" if m.has("tf32") => decode_cvt_tf32(ctx, inst, &name, uses)?,
        "cvt" => {
            let tys = m.types();
            let [dty, sty] = tys[..] else {
                return Err(bad(format!(
                    "{name}: cvt needs a destination and a source type"
                )));
            };
            if matches!(dty, Ty::F16x2 | Ty::Bf16x2) {
                let [d, a, b] = operands(inst, 3)? else {
                    unreachable!()
                };
                return Ok(Op::CvtPack {
                    dty,
                    m: m.float(),
                    d: ctx.dst(d, uses)?,
                    a: ctx.src(a, sty, uses)?,
                    b: ctx.src(b, sty, uses)?,
                });
            }
            if matches!(sty, Ty::F16x2 | Ty::Bf16x2 | Ty::Pred) || dty == Ty::Pred {
                return Err(unknown());
            }
            let [d, a] = operands(inst, 2)? else {
                unreachable!()
            };
            Op::Cvt {
                dty,
                sty,
                m: m.float(),
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, sty, uses)?,
            }
        }
        "bfe" => {
            let ty = m.ty()?;
            let [d, a, b, c] = operands(inst, 4)? else {
                unreachable!()
            };
            Op::Bfe {
                ty,
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, ty, uses)?,
                b: ctx.src(b, Ty::U(32), uses)?,
                c: ctx.src(c, Ty::U(32), uses)?,
            }
        }
        "bfi" => {
            let ty = m.ty()?;
            let [d, a, b, pos, len] = &o[..] else {
                return Err(bad("bfi takes 5 operands"));
            };
            Op::Bfi {
                bits: ty.bits(),
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, ty, uses)?,
                b: ctx.src(b, ty, uses)?,
                pos: ctx.src(pos, Ty::U(32), uses)?,
                len: ctx.src(len, Ty::U(32), uses)?,
            }
        }
        "prmt" => {
            if m.0.len() != 1 {
                return Err(unsupported(format!(
                    "instruction {name}: only the default prmt mode is supported"
                )));
            }
            let [d, a, b, c] = operands(inst, 4)? else {
                unreachable!()
            };
            let t = Ty::B(32);
            Op::Prmt {
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, t, uses)?,
                b: ctx.src(b, t, uses)?,
                c: ctx.src(c, t, uses)?,
            }
        }
        "shf" => {
            let [d, a, b, c] = operands(inst, 4)? else {
                unreachable!()
            };
            let t = Ty::B(32);
            Op::Shf {
                left: m.has("l"),
                wrap: m.has("wrap"),
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, t, uses)?,
                b: ctx.src(b, t, uses)?,
                c: ctx.src(c, t, uses)?,
            }
        }
        "ld" | "ldu" | "st" => {
            let ty = m.ty()?;
            let [x, y] = operands(inst, 2)? else {
                unreachable!()
            };
            let n = m.vector(&name, ty)?;
            let bytes = ty.bytes() as usize * n;
            if bytes > 16 {
                return Err(unsupported(format!(
                    "instruction {name}: a {bytes}-byte vector access (at most 16 bytes are supported)"
                )));
            }
            let (addr_op, val_op) = if head == "st" { (x, y) } else { (y, x) };
            let (addr, sym_space) = ctx.addr(addr_op, uses)?;
            let mut space = m.space();
            if space == MemSpace::KernelParam || space == MemSpace::Generic {
                match sym_space {
                    Some(s @ (MemSpace::FrameParam | MemSpace::KernelParam)) => space = s,
                    Some(s) if space == MemSpace::Generic => space = s,
                    None if space == MemSpace::KernelParam && !ctx.is_entry => {
                        space = MemSpace::FrameParam
                    }
                    None if space == MemSpace::KernelParam => {
                        return Err(unsupported(format!(
                            "{name} through a register address into kernel parameters"
                        )))
                    }
                    _ => {}
                }
            }
            if head == "st" && matches!(space, MemSpace::KernelParam | MemSpace::Const) {
                return Err(bad(format!("{name}: store to a read-only space")));
            }
            let vals: Vec<&Operand> = match val_op {
                Operand::Vector(v) => v.iter().collect(),
                single => vec![single],
            };
            if vals.len() != n {
                return Err(bad(format!(
                    "{name} needs {n} values, found {}",
                    vals.len()
                )));
            }
            // Memory-model qualifiers: blocks may synchronise through such accesses.
            let strong = ["acquire", "release", "relaxed", "volatile", "mmio"]
                .iter()
                .any(|q| m.has(q));
            if head == "st" {
                let srcs = vals
                    .iter()
                    .map(|v| ctx.src(v, ty, uses))
                    .collect::<Result<_>>()?;
                Op::St {
                    space,
                    strong,
                    ty,
                    srcs,
                    addr,
                }
            } else {
                let ds = vals
                    .iter()
                    .map(|v| ctx.dst(v, uses))
                    .collect::<Result<_>>()?;
                Op::Ld {
                    space,
                    nc: m.has("nc"),
                    strong,
                    ty,
                    ds,
                    addr,
                }
            }
        }
        "atom" | "red" => {
            let ty = m.ty()?;
            let op = [
                ("add", AtomOp::Add),
                ("min", AtomOp::Min),
                ("max", AtomOp::Max),
                ("exch", AtomOp::Exch),
                ("cas", AtomOp::Cas),
                ("and", AtomOp::And),
                ("or", AtomOp::Or),
                ("xor", AtomOp::Xor),
                ("inc", AtomOp::Inc),
                ("dec", AtomOp::Dec),
            ]
            .iter()
            .find(|(w, _)| m.has(w))
            .map(|p| p.1)
            .ok_or_else(unknown)?;
            // On floats PTX has only `add`; the bitwise operations keep f32/f64 bits as they are.
            let float_ok = match op {
                AtomOp::Add => true,
                AtomOp::Min | AtomOp::Max | AtomOp::Inc | AtomOp::Dec => false,
                _ => matches!(ty, Ty::F32 | Ty::F64),
            };
            if m.vector(&name, ty)? > 1 || (ty.is_float() && !float_ok) {
                return Err(unknown());
            }
            let (d, rest) = if head == "atom" {
                (
                    ctx.dst(o.first().ok_or_else(|| bad("atom without operands"))?, uses)?,
                    o.get(1..).unwrap_or_default(),
                )
            } else {
                (SINK, &o[..])
            };
            let want = if op == AtomOp::Cas { 3 } else { 2 };
            if rest.len() != want {
                return Err(bad(format!(
                    "{name} takes {} operands",
                    want + (head == "atom") as usize
                )));
            }
            let (addr, sym_space) = ctx.addr(&rest[0], uses)?;
            let mut space = m.space();
            if space == MemSpace::Generic {
                space = sym_space.unwrap_or(space);
            }
            if !matches!(
                space,
                MemSpace::Generic | MemSpace::Global | MemSpace::Shared
            ) {
                return Err(unsupported(format!("{name}: atomics on this state space")));
            }
            let b = ctx.src(&rest[1], ty, uses)?;
            let c = if op == AtomOp::Cas {
                ctx.src(&rest[2], ty, uses)?
            } else {
                Src::Imm(0)
            };
            Op::Atom {
                space,
                op,
                ty,
                d,
                addr,
                b,
                c,
            }
        }
        "bar" | "barrier" => {
            let u = Ty::U(32);
            if m.has("warp") {
                let [mask] = operands(inst, 1)? else {
                    unreachable!()
                };
                return Ok(Op::WarpSync {
                    mask: ctx.src(mask, u, uses)?,
                });
            }
            if m.has("red") {
                let op = if m.has("popc") {
                    BarRedOp::Popc
                } else if m.has("and") {
                    BarRedOp::And
                } else if m.has("or") {
                    BarRedOp::Or
                } else {
                    return Err(unknown());
                };
                let (d, rest) = o
                    .split_first()
                    .ok_or_else(|| bad(format!("{name} needs operands")))?;
                let (id, count, c) = match rest {
                    [id, c] => (id, None, c),
                    [id, n, c] => (id, Some(n), c),
                    _ => return Err(bad(format!("{name} takes 3 or 4 operands"))),
                };
                let (pred, negate) = match c {
                    Operand::Not(p) => (Src::Reg(ctx.reg(p, uses)?), true),
                    x => (ctx.src(x, Ty::Pred, uses)?, false),
                };
                return Ok(Op::BarRed {
                    op,
                    d: ctx.dst(d, uses)?,
                    id: ctx.src(id, u, uses)?,
                    count: count.map(|n| ctx.src(n, u, uses)).transpose()?,
                    pred,
                    negate,
                });
            }
            let wait = !m.has("arrive");
            let id = ctx.src(
                o.first()
                    .ok_or_else(|| bad(format!("{name} needs a barrier id")))?,
                u,
                uses,
            )?;
            let count = o.get(1).map(|c| ctx.src(c, u, uses)).transpose()?;
            if o.len() > 2 {
                return Err(bad(format!("{name} takes at most 2 operands")));
            }
            Op::Bar { wait, id, count }
        }
        "shfl" => {
            if !m.has("sync") {
                return Err(unsupported(format!(
                    "instruction {name}: only shfl.sync is supported (sm_70+)"
                )));
            }
            let mode = if m.has("up") {
                ShflMode::Up
            } else if m.has("down") {
                ShflMode::Down
            } else if m.has("bfly") {
                ShflMode::Bfly
            } else {
                ShflMode::Idx
            };
            let [d, a, b, c, mask] = &o[..] else {
                return Err(bad("shfl.sync takes 5 operands"));
            };
            let (d, p) = match d {
                Operand::Pair(x, y) => (
                    ctx.dst(&Operand::Name(x.clone()), uses)?,
                    ctx.dst(&Operand::Name(y.clone()), uses)?,
                ),
                x => (ctx.dst(x, uses)?, SINK),
            };
            let t = Ty::B(32);
            Op::Shfl {
                mode,
                d,
                p,
                a: ctx.src(a, t, uses)?,
                b: ctx.src(b, t, uses)?,
                c: ctx.src(c, t, uses)?,
                mask: ctx.src(mask, t, uses)?,
            }
        }
        "vote" => {
            if !m.has("sync") {
                return Err(unsupported(format!(
                    "instruction {name}: only vote.sync is supported (sm_70+)"
                )));
            }
            let mode = if m.has("all") {
                VoteMode::All
            } else if m.has("any") {
                VoteMode::Any
            } else if m.has("uni") {
                VoteMode::Uni
            } else {
                VoteMode::Ballot
            };
            let [d, a, mask] = operands(inst, 3)? else {
                unreachable!()
            };
            let (a, negate) = match a {
                Operand::Not(p) => (Src::Reg(ctx.reg(p, uses)?), true),
                x => (ctx.src(x, Ty::Pred, uses)?, false),
            };
            Op::Vote {
                mode,
                d: ctx.dst(d, uses)?,
                a,
                negate,
                mask: ctx.src(mask, Ty::B(32), uses)?,
            }
        }
        "match" => {
            if !m.has("sync") {
                return Err(unknown());
            }
            let all = m.has("all");
            if !all && !m.has("any") {
                return Err(unknown());
            }
            let ty = m.ty()?;
            let [d, a, mask] = operands(inst, 3)? else {
                unreachable!()
            };
            let (d, p) = match d {
                Operand::Pair(x, y) if all => (
                    ctx.dst(&Operand::Name(x.clone()), uses)?,
                    ctx.dst(&Operand::Name(y.clone()), uses)?,
                ),
                x => (ctx.dst(x, uses)?, SINK),
            };
            Op::Match {
                all,
                bits: ty.bits(),
                d,
                p,
                a: ctx.src(a, ty, uses)?,
                mask: ctx.src(mask, Ty::B(32), uses)?,
            }
        }
        "redux" => {
            let ty = m.ty()?;
            let op = [
                ("add", ReduxOp::Add),
                ("min", ReduxOp::Min),
                ("max", ReduxOp::Max),
                ("and", ReduxOp::And),
                ("or", ReduxOp::Or),
                ("xor", ReduxOp::Xor),
            ]
            .iter()
            .find(|(w, _)| m.has(w))
            .map(|p| p.1)
            .ok_or_else(unknown)?;
            if !m.has("sync") || ty.is_float() || ty.bits() != 32 {
                return Err(unknown());
            }
            let [d, a, mask] = operands(inst, 3)? else {
                unreachable!()
            };
            Op::Redux {
                op,
                signed: ty.is_signed(),
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, ty, uses)?,
                mask: ctx.src(mask, Ty::B(32), uses)?,
            }
        }
        "dp4a" | "dp2a" => {
            let tys = m.types();
            let [aty, bty] = tys[..] else {
                return Err(bad(format!("{name} needs two types")));
            };
            let kind = if head == "dp4a" {
                DotKind::Dp4a
            } else {
                DotKind::Dp2a { hi: m.has("hi") }
            };
            let [d, a, b, c] = operands(inst, 4)? else {
                unreachable!()
            };
            let t = Ty::B(32);
            Op::Dot {
                kind,
                a_signed: aty.is_signed(),
                b_signed: bty.is_signed(),
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, t, uses)?,
                b: ctx.src(b, t, uses)?,
                c: ctx.src(c, t, uses)?,
            }
        }
        "vabsdiff4" => {
            let tys = m.types();
            let [_, aty, bty] = tys[..] else {
                return Err(bad(format!("{name} needs three types")));
            };
            let selectors = o
                .iter()
                .any(|x| matches!(x, Operand::Name(n) if n.contains('.')));
            if m.has("sat") || aty != bty || selectors {
                return Err(unsupported(format!(
                    "instruction {name}: only vabsdiff4 without .sat, byte selectors or masks, on operands of one type, is supported"
                )));
            }
            let [d, a, b, c] = operands(inst, 4)? else {
                unreachable!()
            };
            let t = Ty::B(32);
            Op::Vabsdiff4 {
                signed: aty.is_signed(),
                add: m.has("add"),
                d: ctx.dst(d, uses)?,
                a: ctx.src(a, t, uses)?,
                b: ctx.src(b, t, uses)?,
                c: ctx.src(c, t, uses)?,
            }
        }
        "mma" => decode_mma(ctx, inst, &name, uses)?,
        "activemask" => {
            let [d] = operands(inst, 1)? else {
                unreachable!()
            };
            Op::Activemask {
                d: ctx.dst(d, uses)?,
            }
        }
        "brx" => {
            let [index, Operand::Name(table)] = &o[..] else {
                return Err(bad(format!(
                    "{name} takes an index and a .branchtargets label"
                )));
            };
            if !m.has("idx") {
                return Err(unknown());
            }
            let labels = ctx.tables.get(table).ok_or_else(|| {
                bad(format!(
                    "{table} is not a .branchtargets list of this function"
                ))
            })?;
            let targets = labels
                .iter()
                .map(|l| {
                    ctx.labels
                        .get(l)
                        .copied()
                        .ok_or_else(|| bad(format!("unknown label {l}")))
                })
                .collect::<Result<_>>()?;
            Op::BrxIdx {
                index: ctx.src(index, Ty::U(32), uses)?,
                targets,
            }
        }
        "bra" => {
            let [Operand::Name(label)] = &o[..] else {
                return Err(unsupported(format!(
                    "{name}: only direct branches to a label are supported"
                )));
            };
            let target = *ctx
                .labels
                .get(label)
                .ok_or_else(|| bad(format!("unknown label {label}")))?;
            Op::Bra { target }
        }
        "call" => decode_call(ctx, inst)?,
        "ret" => {
            if ctx.is_entry {
                Op::Exit
            } else {
                Op::Ret
            }
        }
        "exit" => Op::Exit,
        "trap" => Op::Trap,
        "cp" => decode_cp_async(ctx, inst, &name, uses)?,
        "membar" | "fence" => Op::Fence,
        "prefetch" | "prefetchu" | "nanosleep" | "pmevent" | "discard" | "applypriority"
        | "createpolicy" => Op::Nop,
        _ => return Err(unknown()),
    })
}

/// The Ampere asynchronous copy (PTX ISA, "cp.async", "cp.async.commit_group",
/// "cp.async.wait_group / cp.async.wait_all"):
/// `cp.async.{ca,cg}.shared{::cta}.global{.L2::cache_hint}{.L2::64B/128B/256B} [dst], [src],
/// cp-size{, src-size | ignore-src}{, cache-policy}` (cp-size 4, 8 or 16; 16 for `.cg`; the
/// cache qualifiers and policy change nothing here), `cp.async.commit_group`,
/// `cp.async.wait_group N` and `cp.async.wait_all`. The bulk, tensor and mbarrier forms are
/// unsupported.
fn decode_cp_async(ctx: &Ctx, inst: &Instruction, name: &str, uses: &mut Vec<u32>) -> Result<Op> {
    let words: Vec<&str> = inst.opcode[1..].iter().map(String::as_str).collect();
    let form = || {
        unsupported(format!(
            "instruction {name} is not supported: of cp.async only cp.async.{{ca,cg}}.shared{{::cta}}.global{{.L2::cache_hint}}{{.L2::64B,.L2::128B,.L2::256B}}, cp.async.commit_group, cp.async.wait_group and cp.async.wait_all run"
        ))
    };
    let (cg, quals) = match words[..] {
        ["async", "commit_group"] => {
            operands(inst, 0)?;
            return Ok(Op::CpAsyncCommit);
        }
        ["async", "wait_all"] => {
            operands(inst, 0)?;
            return Ok(Op::CpAsyncWait { n: 0, commit: true });
        }
        ["async", "wait_group"] => {
            let [n] = operands(inst, 1)? else {
                unreachable!()
            };
            let Operand::Int(n) = n else {
                return Err(bad(format!("{name}: N must be an integer constant")));
            };
            let n =
                u32::try_from(*n).map_err(|_| bad(format!("{name}: N = {n} is out of range")))?;
            return Ok(Op::CpAsyncWait { n, commit: false });
        }
        ["async", level @ ("ca" | "cg"), "shared" | "shared::cta", "global", ref quals @ ..] => {
            (level == "cg", quals)
        }
        _ => return Err(form()),
    };
    let (mut hint, mut prefetch) = (false, false);
    for q in quals {
        match *q {
            "L2::cache_hint" if !hint => hint = true,
            "L2::64B" | "L2::128B" | "L2::256B" if !prefetch => prefetch = true,
            _ => return Err(form()),
        }
    }
    let (o, policy) = match (&inst.operands[..], hint) {
        ([rest @ .., policy], true) => (rest, Some(policy)),
        (all, _) => (all, None),
    };
    let [dst, src, size, extra @ ..] = o else {
        return Err(bad(format!(
            "{name} takes [dst], [src], cp-size{{, src-size or ignore-src}}{}",
            if hint { ", cache-policy" } else { "" }
        )));
    };
    let size = match *size {
        Operand::Int(16) => 16,
        Operand::Int(n @ (4 | 8)) if !cg => n as u32,
        _ => {
            return Err(bad(format!(
                "{name}: cp-size must be the constant {}",
                if cg { "16" } else { "4, 8 or 16" }
            )))
        }
    };
    let (dst, dst_space) = ctx.addr(dst, uses)?;
    let (src, src_space) = ctx.addr(src, uses)?;
    if dst_space.is_some_and(|s| s != MemSpace::Shared)
        || src_space.is_some_and(|s| s != MemSpace::Global)
    {
        return Err(bad(format!(
            "{name}: dst must be a shared and src a global address"
        )));
    }
    if let Some(p) = policy {
        // The cache policy is a hint with no effect here, but its register is read.
        ctx.src(p, Ty::B(64), uses)?;
    }
    let full = Src::Imm(size as u64);
    let (src_size, ignore) = match extra {
        [] => (full, None),
        [x] => match ctx.src(x, Ty::U(32), uses)? {
            Src::Reg(r) if ctx.is_pred(r) => (full, Some(Src::Reg(r))),
            s => (s, None),
        },
        _ => return Err(bad(format!("{name}: too many operands"))),
    };
    Ok(Op::CpAsync {
        dst,
        src,
        size,
        src_size,
        ignore,
    })
}

/// `cvt.rna{.satfinite}.tf32.f32 d, a` and `cvt.{rn,rz}{.satfinite}{.relu}.tf32.f32 d, a`
/// (PTX ISA, `cvt`; the modifiers in any order): the one conversion to TF32 there is, from f32.
fn decode_cvt_tf32(ctx: &Ctx, inst: &Instruction, name: &str, uses: &mut Vec<u32>) -> Result<Op> {
    let words = &inst.opcode[1..];
    let form = || {
        unsupported(format!(
            "instruction {name} is not supported: the conversions to .tf32 are cvt.rna{{.satfinite}}.tf32.f32 and cvt.{{rn,rz}}{{.satfinite}}{{.relu}}.tf32.f32"
        ))
    };
    let [mods @ .., dty, sty] = words else {
        return Err(form());
    };
    if dty != "tf32" || sty != "f32" {
        return Err(form());
    }
    let mut m = FloatMods::NEAREST;
    let mut rnd = None;
    for w in mods {
        match w.as_str() {
            "rna" if rnd.is_none() => rnd = Some(Rnd::Rna),
            "rn" if rnd.is_none() => rnd = Some(Rnd::Rn),
            "rz" if rnd.is_none() => rnd = Some(Rnd::Rz),
            "satfinite" if !m.satfinite => m.satfinite = true,
            "relu" if !m.relu => m.relu = true,
            _ => return Err(form()),
        }
    }
    m.rnd = rnd.ok_or_else(form)?;
    if m.rnd == Rnd::Rna && m.relu {
        return Err(form());
    }
    let [d, a] = operands(inst, 2)? else {
        unreachable!()
    };
    Ok(Op::CvtTf32 {
        m,
        d: ctx.dst(d, uses)?,
        a: ctx.src(a, Ty::F32, uses)?,
    })
}

/// `mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {d0..d3}, {a0..a3}, {b0, b1}, {c0..c3}`,
/// the one `mma` form the interpreter runs; every other shape, type, layout or modifier (and
/// `mma.sp`) is reported as unsupported.
fn decode_mma(ctx: &Ctx, inst: &Instruction, name: &str, uses: &mut Vec<u32>) -> Result<Op> {
    const FORM: [&str; 9] = [
        "sync", "aligned", "m16n8k8", "row", "col", "f32", "tf32", "tf32", "f32",
    ];
    if inst.opcode[1..] != FORM {
        return Err(unsupported(format!(
            "instruction {name} is not supported: the one mma form the interpreter runs is mma.{}",
            FORM.join(".")
        )));
    }
    let [d, a, b, c] = operands(inst, 4)? else {
        unreachable!()
    };
    let t = Ty::B(32);
    let mut mma = Mma {
        d: [SINK; 4],
        a: [Src::Imm(0); 4],
        b: [Src::Imm(0); 2],
        c: [Src::Imm(0); 4],
    };
    for (slot, x) in mma.d.iter_mut().zip(mma_vector::<4>(d, "d", name)?) {
        *slot = ctx.dst(x, uses)?;
    }
    for (slot, x) in mma.a.iter_mut().zip(mma_vector::<4>(a, "a", name)?) {
        *slot = ctx.src(x, t, uses)?;
    }
    for (slot, x) in mma.b.iter_mut().zip(mma_vector::<2>(b, "b", name)?) {
        *slot = ctx.src(x, t, uses)?;
    }
    for (slot, x) in mma.c.iter_mut().zip(mma_vector::<4>(c, "c", name)?) {
        *slot = ctx.src(x, t, uses)?;
    }
    Ok(Op::Mma(Box::new(mma)))
}

/// The `N` elements of the vector operand `what` (`{x, y, ...}`) of instruction `name`.
fn mma_vector<'o, const N: usize>(
    o: &'o Operand,
    what: &str,
    name: &str,
) -> Result<&'o [Operand; N]> {
    match o {
        Operand::Vector(v) => v.as_slice().try_into().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        bad(format!(
            "{name}: operand {what} must be a vector of {N} registers {{...}}, found {o:?}"
        ))
    })
}

/// The width of each of the `n` parts a `mov` packs into or unpacks from a `ty` value: 2 or 4
/// parts of at least 8 bits that together make up the type.
fn part_bits(ty: Ty, n: usize) -> Result<u32> {
    let bits = ty.bits();
    match n {
        2 | 4 if bits.is_multiple_of(n as u32) && bits / n as u32 >= 8 => Ok(bits / n as u32),
        _ => Err(bad(format!(
            "mov cannot split a {bits}-bit value into {n} parts (2 or 4 parts of 8, 16 or 32 bits)"
        ))),
    }
}

/// `.wide` doubles a 16- or 32-bit operand type, as PTX allows; a 64-bit product would not fit.
fn check_wide(ty: Ty) -> Result<()> {
    if matches!(ty.bits(), 16 | 32) {
        Ok(())
    } else {
        Err(bad(format!(
            ".wide needs a 16- or 32-bit integer type, not {ty:?}"
        )))
    }
}

fn wide(ty: Ty) -> Ty {
    match ty {
        Ty::S(n) => Ty::S(n * 2),
        Ty::U(n) => Ty::U(n * 2),
        Ty::B(n) => Ty::B(n * 2),
        other => other,
    }
}

/// `call (ret), f, (args)` or `call f, (args)` or `call f`.
fn decode_call(ctx: &Ctx, inst: &Instruction) -> Result<Op> {
    let (rets, rest): (&[String], &[Operand]) = match &inst.operands[..] {
        [Operand::List(r), rest @ ..] => (r, rest),
        rest => (&[], rest),
    };
    let (callee, args): (&str, &[String]) = match rest {
        [Operand::Name(f)] => (f, &[]),
        [Operand::Name(f), Operand::List(a)] => (f, a),
        [Operand::Name(f), Operand::List(a), _proto] => (f, a),
        _ => {
            return Err(unsupported(
                "this form of call (indirect or with a prototype) is not supported",
            ))
        }
    };
    let Some(Binding::Func(fi)) = ctx.lookup(callee) else {
        return Err(bad(format!("call to {callee}, which is not a function")));
    };
    let layout = &ctx.layouts[&fi];
    if args.len() != layout.params.len() || rets.len() != layout.returns.len() {
        return Err(bad(format!(
            "call to {callee} passes {} arguments and {} results, it takes {} and {}",
            args.len(),
            rets.len(),
            layout.params.len(),
            layout.returns.len()
        )));
    }
    let ins = args
        .iter()
        .zip(&layout.params)
        .map(|(a, p)| {
            let from = caller_slot(ctx, a, p, callee, "argument", "parameter")?;
            Ok(FrameCopy {
                from,
                to: p.off,
                len: p.size,
            })
        })
        .collect::<Result<_>>()?;
    let outs = rets
        .iter()
        .zip(&layout.returns)
        .map(|(r, p)| {
            let to = caller_slot(ctx, r, p, callee, "result", "return parameter")?;
            Ok(FrameCopy {
                from: p.off,
                to,
                len: p.size,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Op::Call {
        target: layout.start,
        ins,
        outs,
    })
}

/// The frame offset of the caller's `.param` variable `name`, passed to (or receiving) the
/// callee's slot `p`; it must have the slot's size. `what` and `whose` name the two in errors.
fn caller_slot(
    ctx: &Ctx,
    name: &str,
    p: &Slot,
    callee: &str,
    what: &str,
    whose: &str,
) -> Result<u32> {
    match ctx.lookup(name) {
        Some(Binding::Param(off, size)) if size == p.size => Ok(off),
        Some(Binding::Param(_, size)) => Err(bad(format!(
            "{what} {name} has {size} bytes, {whose} {} of {callee} has {}",
            p.name, p.size
        ))),
        _ => Err(bad(format!("call {what} {name} is not a .param variable"))),
    }
}
