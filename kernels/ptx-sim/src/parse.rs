//! Turns PTX tokens into a `ModuleAst`: directives, declarations, functions and their
//! statements, with names left unresolved. A name defined twice where PTX allows it once (a
//! function, a label in a function, a register in a scope) is an error.

use std::collections::HashMap;

use crate::ast::{Function, Instruction, ModuleAst, Operand, Param, Space, Statement, VarDecl};
use crate::error::{Result, SimError};
use crate::inst::Ty;
use crate::lex::{tokenize, Tok, Token};

/// Parses a whole PTX module.
pub fn parse_module(text: &str) -> Result<ModuleAst> {
    let tokens = tokenize(text)?;
    let mut p = Parser {
        toks: &tokens,
        pos: 0,
        pending: Vec::new(),
    };
    let mut m = ModuleAst {
        address_size: 64,
        ..ModuleAst::default()
    };
    // Line of the definition (with a body) of each function; declarations may repeat.
    let mut defined: HashMap<String, u32> = HashMap::new();
    while !p.at_end() {
        let line = p.line();
        let word = p.word()?;
        match word.as_str() {
            ".version" => m.version = p.word()?,
            ".target" => {
                m.target.push(p.word()?);
                while p.eat(',') {
                    m.target.push(p.word()?);
                }
            }
            ".address_size" => {
                let size = p.number()?;
                if size != 64 {
                    return Err(SimError::parse(
                        line,
                        format!("only .address_size 64 is supported, not {size}"),
                    ));
                }
                m.address_size = 64;
            }
            ".visible" | ".extern" | ".weak" | ".common" => {
                let next = p.peek_word();
                if word == ".extern" && next.as_deref() == Some(".shared") {
                    p.word()?;
                    m.vars.push(p.var_decl(Space::Shared, true, line)?);
                }
                // Otherwise a linkage prefix; the declaration follows.
            }
            ".global" => m.vars.push(p.var_decl(Space::Global, false, line)?),
            ".const" => m.vars.push(p.var_decl(Space::Const, false, line)?),
            ".shared" => m.vars.push(p.var_decl(Space::Shared, false, line)?),
            ".entry" | ".func" => {
                let f = p.function(word == ".entry")?;
                if f.body.is_some() {
                    if let Some(first) = defined.insert(f.name.clone(), line) {
                        return Err(SimError::parse(
                            line,
                            format!(
                                "duplicate definition of {word} {} (first defined on line {first})",
                                f.name
                            ),
                        ));
                    }
                }
                m.functions.push(f);
            }
            ".file" | ".loc" => p.skip_line(line),
            ".section" => {
                p.word()?;
                p.skip_braces()?;
            }
            other => {
                return Err(SimError::parse(
                    line,
                    format!("unexpected {other:?} at module level"),
                ))
            }
        }
    }
    Ok(m)
}

/// How deeply braces may nest in an operand or an initializer (PTX needs one level for
/// vectors and one per array dimension).
const MAX_NESTING: usize = 8;

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    /// Words split off a directive written without spaces (`.reg.b16` gives `.b16`), read
    /// before the next token.
    pending: Vec<String>,
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    fn line(&self) -> u32 {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(1, |t| t.line)
    }

    fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn peek_word(&self) -> Option<String> {
        if let Some(w) = self.pending.last() {
            return Some(w.clone());
        }
        match self.peek() {
            Some(Tok::Word(w)) => Some(w.clone()),
            _ => None,
        }
    }

    fn next(&mut self) -> Result<&'a Tok> {
        let line = self.line();
        let t = self
            .toks
            .get(self.pos)
            .ok_or_else(|| SimError::parse(line, "unexpected end of PTX"))?;
        self.pos += 1;
        Ok(&t.tok)
    }

    fn word(&mut self) -> Result<String> {
        if let Some(w) = self.pending.pop() {
            return Ok(w);
        }
        let line = self.line();
        match self.next()? {
            Tok::Word(w) => Ok(w.clone()),
            other => Err(SimError::parse(
                line,
                format!("expected a word, found {}", show(other)),
            )),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<()> {
        let line = self.line();
        match self.next()? {
            Tok::Punct(p) if *p == c => Ok(()),
            other => Err(SimError::parse(
                line,
                format!("expected '{c}', found {}", show(other)),
            )),
        }
    }

    fn number(&mut self) -> Result<i64> {
        let line = self.line();
        let neg = self.eat('-');
        let w = self.word()?;
        let v = parse_int(&w)
            .ok_or_else(|| SimError::parse(line, format!("expected a number, found {w:?}")))?;
        if !neg {
            return Ok(v);
        }
        v.checked_neg()
            .ok_or_else(|| SimError::parse(line, format!("number -{w} is out of range")))
    }

    /// The value of `.align N`: a power of two.
    fn alignment(&mut self) -> Result<u32> {
        let line = self.line();
        let n = self.number()?;
        u32::try_from(n)
            .ok()
            .filter(|a| a.is_power_of_two())
            .ok_or_else(|| SimError::parse(line, format!(".align {n} is not a power of two")))
    }

    /// The size in bytes of `name`, `elem` bytes times its dimensions `[n][m]...` if it has
    /// any; None when one is `[]` (an `.extern .shared` array without a size).
    fn array_size(&mut self, name: &str, elem: usize, line: u32) -> Result<Option<usize>> {
        let mut size = elem;
        let mut dynamic = false;
        while self.eat('[') {
            if self.eat(']') {
                dynamic = true;
                continue;
            }
            let n = self.number()?;
            let n = usize::try_from(n)
                .map_err(|_| SimError::parse(line, format!("negative array size {n} in {name}")))?;
            size = size
                .checked_mul(n)
                .ok_or_else(|| SimError::parse(line, format!("the size of {name} overflows")))?;
            self.expect(']')?;
        }
        Ok((!dynamic).then_some(size))
    }

    /// Splits a directive written as one word (`.reg.b16`, `.shared.align`) into its first
    /// part, returned, and the rest, read next.
    fn split_directive(&mut self, w: String) -> String {
        let Some(rest) = w.strip_prefix('.') else {
            return w;
        };
        let mut parts: Vec<String> = rest.split('.').map(|p| format!(".{p}")).collect();
        if parts.len() < 2 {
            return w;
        }
        let first = parts.remove(0);
        parts.reverse();
        self.pending.extend(parts);
        first
    }

    fn skip_line(&mut self, line: u32) {
        while !self.at_end() && self.toks[self.pos].line == line {
            self.pos += 1;
        }
    }

    fn skip_braces(&mut self) -> Result<()> {
        self.expect('{')?;
        let mut depth = 1;
        while depth > 0 {
            match self.next()? {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// `[.align N] [.vN] .type name[dims] [= init];` after the state space word.
    fn var_decl(&mut self, space: Space, is_extern: bool, line: u32) -> Result<VarDecl> {
        let mut align = 0;
        let mut vec = 1;
        let ty = loop {
            let w = self.word()?;
            match w.as_str() {
                ".align" => align = self.alignment()?,
                ".v2" => vec = 2,
                ".v4" => vec = 4,
                ".ptr" | ".global" | ".shared" | ".const" | ".local" => {}
                _ if w.starts_with('.') => {
                    break Ty::parse(&w[1..])
                        .ok_or_else(|| SimError::parse(line, format!("unknown type {w}")))?;
                }
                _ => {
                    return Err(SimError::parse(
                        line,
                        format!("expected a type, found {w:?}"),
                    ))
                }
            }
        };
        let elem = ty.bytes() as usize * vec;
        let name = self.word()?;
        let sized = self.array_size(&name, elem, line)?;
        let (size, dynamic) = (sized.unwrap_or(0), sized.is_none());
        let mut init = Vec::new();
        if self.eat('=') {
            let mut values = Vec::new();
            self.initializer(&mut values, 0)?;
            for v in values {
                init.extend(init_bytes(v, ty, line)?);
            }
            if init.len() > size {
                return Err(SimError::parse(
                    line,
                    format!("initializer of {name} is larger than its {size} bytes"),
                ));
            }
        }
        self.expect(';')?;
        if dynamic && !is_extern {
            return Err(SimError::parse(
                line,
                format!("{name}[] without a size must be .extern"),
            ));
        }
        let align = if align == 0 { elem as u32 } else { align };
        Ok(VarDecl {
            space,
            name,
            align,
            size,
            dynamic,
            init,
            line,
        })
    }

    /// One initializer value or a braced list of them, nested at most `MAX_NESTING` deep
    /// (`depth` lists enclose this one).
    fn initializer(&mut self, out: &mut Vec<Operand>, depth: usize) -> Result<()> {
        if self.eat('{') {
            self.check_nesting(depth, "initializer")?;
            loop {
                self.initializer(out, depth + 1)?;
                if !self.eat(',') {
                    break;
                }
            }
            self.expect('}')
        } else {
            let line = self.line();
            match self.operand()? {
                v @ (Operand::Int(_) | Operand::F32(_) | Operand::F64(_)) => {
                    out.push(v);
                    Ok(())
                }
                other => Err(SimError::parse(
                    line,
                    format!("unsupported initializer {other:?}"),
                )),
            }
        }
    }

    /// `.entry name (params) [directives] { body }` or `.func [(ret)] name (params) ...`.
    fn function(&mut self, is_entry: bool) -> Result<Function> {
        let returns = if !is_entry && self.peek() == Some(&Tok::Punct('(')) {
            self.params()?
        } else {
            Vec::new()
        };
        let name = self.word()?;
        let params = if self.peek() == Some(&Tok::Punct('(')) {
            self.params()?
        } else {
            Vec::new()
        };
        let (mut maxntid, mut reqntid) = (None, None);
        loop {
            match self.peek() {
                Some(Tok::Punct(';')) => {
                    self.pos += 1;
                    return Ok(Function {
                        name,
                        is_entry,
                        returns,
                        params,
                        body: None,
                        maxntid,
                        reqntid,
                    });
                }
                Some(Tok::Punct('{')) => break,
                Some(Tok::Word(w)) if w.starts_with('.') => {
                    // Performance directives (.maxntid 256, 1, 1; .reqntid; .minnctapersm N;
                    // .noreturn); the block sizes are kept to check launches against.
                    let directive = w.clone();
                    let line = self.line();
                    self.pos += 1;
                    let mut words = Vec::new();
                    while let Some(Tok::Word(n)) = self.peek() {
                        if n.starts_with('.') {
                            break;
                        }
                        words.push(n.clone());
                        self.pos += 1;
                        if !self.eat(',') {
                            break;
                        }
                    }
                    if matches!(directive.as_str(), ".maxntid" | ".reqntid") {
                        let dims: Vec<i64> = words.iter().filter_map(|w| parse_int(w)).collect();
                        if dims.is_empty()
                            || dims.len() != words.len()
                            || dims.len() > 3
                            || dims.iter().any(|&d| d <= 0)
                        {
                            return Err(SimError::parse(
                                line,
                                format!("{directive} of {name} needs 1 to 3 positive sizes"),
                            ));
                        }
                        let mut v = [1u32; 3];
                        for (slot, d) in v.iter_mut().zip(&dims) {
                            *slot = u32::try_from(*d).unwrap_or(u32::MAX);
                        }
                        if directive == ".maxntid" {
                            maxntid = Some(v);
                        } else {
                            reqntid = Some(v);
                        }
                    }
                }
                _ => {
                    let l = self.line();
                    return Err(SimError::parse(l, format!("expected the body of {name}")));
                }
            }
        }
        let body = self.body()?;
        Ok(Function {
            name,
            is_entry,
            returns,
            params,
            body: Some(body),
            maxntid,
            reqntid,
        })
    }

    fn params(&mut self) -> Result<Vec<Param>> {
        self.expect('(')?;
        let mut out = Vec::new();
        if self.eat(')') {
            return Ok(out);
        }
        loop {
            let line = self.line();
            let w = self.word()?;
            if w != ".param" && w != ".reg" {
                return Err(SimError::parse(
                    line,
                    format!("expected .param, found {w:?}"),
                ));
            }
            let v = self.param_decl(line)?;
            out.push(v);
            if !self.eat(',') {
                break;
            }
        }
        self.expect(')')?;
        Ok(out)
    }

    /// One parameter: `.u64 name`, `.align 8 .b8 name[16]`, `.u64 .ptr .global .align 4 name`.
    fn param_decl(&mut self, line: u32) -> Result<Param> {
        let mut align = 0;
        let mut ty = None;
        let name = loop {
            let w = self.word()?;
            match w.as_str() {
                ".align" => align = self.alignment()?,
                ".ptr" | ".global" | ".shared" | ".const" | ".local" => {}
                _ if w.starts_with('.') => {
                    ty = Some(
                        Ty::parse(&w[1..])
                            .ok_or_else(|| SimError::parse(line, format!("unknown type {w}")))?,
                    )
                }
                _ => break w,
            }
        };
        let ty =
            ty.ok_or_else(|| SimError::parse(line, format!("parameter {name} has no type")))?;
        let size = self
            .array_size(&name, ty.bytes() as usize, line)?
            .ok_or_else(|| SimError::parse(line, format!("parameter {name}[] has no size")))?;
        let align = if align == 0 { ty.bytes() } else { align };
        Ok(Param {
            name,
            ty,
            size,
            align,
        })
    }

    /// The statements of a body in braces. Its closing brace is an implicit `ret`, so running
    /// off the end returns (or, in a kernel, exits) rather than going on into the code of the
    /// next function.
    fn body(&mut self) -> Result<Vec<Statement>> {
        self.expect('{')?;
        let mut out = Vec::new();
        let mut depth = 1;
        // Line of each label of the function, and of each register name of each open scope.
        let mut labels: HashMap<String, u32> = HashMap::new();
        let mut regs: Vec<HashMap<(String, bool), u32>> = vec![HashMap::new()];
        while depth > 0 {
            let line = self.line();
            match self.next()? {
                Tok::Punct('{') => {
                    depth += 1;
                    regs.push(HashMap::new());
                    out.push(Statement::Open);
                }
                Tok::Punct('}') => {
                    depth -= 1;
                    regs.pop();
                    out.push(if depth > 0 {
                        Statement::Close
                    } else {
                        Statement::Inst(Instruction {
                            line,
                            guard: None,
                            opcode: vec!["ret".to_string()],
                            operands: Vec::new(),
                        })
                    });
                }
                Tok::Punct('@') => {
                    let neg = self.eat('!');
                    let pred = self.word()?;
                    let mut inst = self.instruction(line)?;
                    inst.guard = Some((neg, pred));
                    out.push(Statement::Inst(inst));
                }
                Tok::Word(w) => {
                    let w = w.clone();
                    if self.eat(':') {
                        if let Some(first) = labels.insert(w.clone(), line) {
                            return Err(SimError::parse(
                                line,
                                format!("duplicate label {w} (first defined on line {first})"),
                            ));
                        }
                        match self.peek_word().as_deref() {
                            Some(".branchtargets") => {
                                self.word()?;
                                let mut labels = vec![self.word()?];
                                while self.eat(',') {
                                    labels.push(self.word()?);
                                }
                                self.expect(';')?;
                                out.push(Statement::BranchTargets { name: w, labels });
                            }
                            Some(".callprototype" | ".calltargets") => {
                                // Only used by indirect calls, which are reported when decoded.
                                while !self.eat(';') {
                                    self.next()?;
                                }
                            }
                            _ => out.push(Statement::Label(w)),
                        }
                        continue;
                    }
                    let w = self.split_directive(w);
                    match w.as_str() {
                        ".reg" => {
                            let scope = regs.last_mut().expect("a scope is open in a body");
                            out.push(self.reg_decl(line, scope)?);
                        }
                        ".local" => {
                            out.push(Statement::Var(self.var_decl(Space::Local, false, line)?))
                        }
                        ".shared" => {
                            out.push(Statement::Var(self.var_decl(Space::Shared, false, line)?))
                        }
                        ".param" => {
                            out.push(Statement::Var(self.var_decl(Space::Param, false, line)?))
                        }
                        ".pragma" => {
                            while !self.eat(';') {
                                self.next()?;
                            }
                        }
                        ".loc" | ".file" => self.skip_line(line),
                        _ if w.starts_with('.') => {
                            return Err(SimError::parse(
                                line,
                                format!("unsupported directive {w} in a function body"),
                            ))
                        }
                        _ => {
                            self.pos -= 1;
                            out.push(Statement::Inst(self.instruction(line)?));
                        }
                    }
                }
                other => {
                    return Err(SimError::parse(
                        line,
                        format!("unexpected {} in a function body", show(other)),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// `.reg .ty %a<N>, %b;` after `.reg`. `scope` holds the register names the enclosing
    /// scope already declares, with their lines: the new names join them, and one already
    /// there is an error.
    fn reg_decl(
        &mut self,
        line: u32,
        scope: &mut HashMap<(String, bool), u32>,
    ) -> Result<Statement> {
        let mut word = self.word()?;
        while matches!(word.as_str(), ".v2" | ".v4") {
            word = self.word()?;
        }
        let ty = word
            .strip_prefix('.')
            .and_then(Ty::parse)
            .ok_or_else(|| SimError::parse(line, format!("unknown register type {word:?}")))?;
        let mut names = Vec::new();
        loop {
            let name = self.word()?;
            let count = if self.eat('<') {
                let n = self.number()?;
                self.expect('>')?;
                let count = u32::try_from(n).map_err(|_| {
                    SimError::parse(line, format!("register count {name}<{n}> is out of range"))
                })?;
                Some(count)
            } else {
                None
            };
            names.push((name, count));
            if !self.eat(',') {
                break;
            }
        }
        self.expect(';')?;
        declare_once(scope, &names, line)?;
        Ok(Statement::Reg {
            names,
            pred: ty == Ty::Pred,
        })
    }

    fn instruction(&mut self, line: u32) -> Result<Instruction> {
        let opword = self.word()?;
        if opword.starts_with('.') {
            return Err(SimError::parse(
                line,
                format!("expected an instruction, found {opword:?}"),
            ));
        }
        let opcode = opword
            .split('.')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let mut operands = Vec::new();
        if !self.eat(';') {
            loop {
                operands.push(self.operand()?);
                if self.eat(';') {
                    break;
                }
                self.expect(',')?;
            }
        }
        Ok(Instruction {
            line,
            guard: None,
            opcode,
            operands,
        })
    }

    /// Fails when a brace at `depth` (the braces already open around it) nests too deeply.
    fn check_nesting(&self, depth: usize, what: &str) -> Result<()> {
        if depth < MAX_NESTING {
            return Ok(());
        }
        Err(SimError::parse(
            self.line(),
            format!("braces in an {what} nested too deeply (more than {MAX_NESTING})"),
        ))
    }

    fn operand(&mut self) -> Result<Operand> {
        self.nested_operand(0)
    }

    /// An operand inside `depth` vector braces.
    fn nested_operand(&mut self, depth: usize) -> Result<Operand> {
        let line = self.line();
        match self.next()? {
            Tok::Punct('[') => {
                let mut base = None;
                let mut offset = 0i64;
                if let Some(Tok::Word(w)) = self.peek() {
                    if let Some(v) = parse_int(w) {
                        offset = v;
                    } else {
                        base = Some(w.clone());
                    }
                    self.pos += 1;
                }
                while !self.eat(']') {
                    let neg = match self.next()? {
                        Tok::Punct('+') => self.eat('-'),
                        Tok::Punct('-') => true,
                        other => {
                            return Err(SimError::parse(
                                line,
                                format!("bad address: unexpected {}", show(other)),
                            ))
                        }
                    };
                    let v = self.number()?;
                    let sum = if neg {
                        offset.checked_sub(v)
                    } else {
                        offset.checked_add(v)
                    };
                    offset = sum.ok_or_else(|| {
                        SimError::parse(line, "the address offset overflows 64 bits")
                    })?;
                }
                Ok(Operand::Addr(base, offset))
            }
            Tok::Punct('{') => {
                self.check_nesting(depth, "operand")?;
                let mut items = Vec::new();
                loop {
                    items.push(self.nested_operand(depth + 1)?);
                    if self.eat('}') {
                        break;
                    }
                    self.expect(',')?;
                }
                Ok(Operand::Vector(items))
            }
            Tok::Punct('(') => {
                let mut items = Vec::new();
                if !self.eat(')') {
                    loop {
                        items.push(self.word()?);
                        if self.eat(')') {
                            break;
                        }
                        self.expect(',')?;
                    }
                }
                Ok(Operand::List(items))
            }
            Tok::Punct('!') => Ok(Operand::Not(self.word()?)),
            Tok::Punct('-') => {
                // `- - x` negates twice: count the signs rather than recurse once per sign.
                let mut odd = true;
                while self.eat('-') {
                    odd = !odd;
                }
                match (self.nested_operand(depth)?, odd) {
                    (Operand::Int(v), true) => Ok(Operand::Int(v.wrapping_neg())),
                    (Operand::F32(b), true) => Ok(Operand::F32(b ^ 0x8000_0000)),
                    (Operand::F64(b), true) => Ok(Operand::F64(b ^ (1 << 63))),
                    (v @ (Operand::Int(_) | Operand::F32(_) | Operand::F64(_)), false) => Ok(v),
                    (other, _) => Err(SimError::parse(line, format!("cannot negate {other:?}"))),
                }
            }
            Tok::Word(w) => {
                let w = w.clone();
                if let Some(lit) = literal(&w) {
                    return Ok(lit);
                }
                if w.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(SimError::parse(line, format!("bad number {w:?}")));
                }
                if self.eat('|') {
                    return Ok(Operand::Pair(w, self.word()?));
                }
                Ok(Operand::Name(w))
            }
            other => Err(SimError::parse(
                line,
                format!("unexpected {} in an operand", show(other)),
            )),
        }
    }
}

/// Records the register names of a `.reg` at `line` in `scope` (name and whether it is the
/// prefix of numbered registers `name<N>`), failing on one the scope already declares.
fn declare_once(
    scope: &mut HashMap<(String, bool), u32>,
    names: &[(String, Option<u32>)],
    line: u32,
) -> Result<()> {
    for (name, count) in names {
        if let Some(first) = scope.insert((name.clone(), count.is_some()), line) {
            let shown = count.map_or(name.clone(), |c| format!("{name}<{c}>"));
            return Err(SimError::parse(
                line,
                format!(
                    "duplicate declaration of register {shown} in one scope (first declared on line {first})"
                ),
            ));
        }
    }
    Ok(())
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("{w:?}"),
        Tok::Punct(c) => format!("'{c}'"),
        Tok::Str(s) => format!("string {s:?}"),
    }
}

/// Parses a PTX integer literal: decimal, `0x` hex, `0b` binary, leading-0 octal, `U` suffix.
pub fn parse_int(w: &str) -> Option<i64> {
    let w = w.strip_suffix('U').unwrap_or(w);
    let (digits, radix) = if let Some(h) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(b) = w.strip_prefix("0b").or_else(|| w.strip_prefix("0B")) {
        (b, 2)
    } else if w.len() > 1 && w.starts_with('0') {
        (&w[1..], 8)
    } else {
        (w, 10)
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().map(|v| v as i64)
}

/// A numeric literal: integer, `0fXXXXXXXX` float, `0dXXXXXXXXXXXXXXXX` double, or a decimal
/// float such as `1.5` (as f64).
fn literal(w: &str) -> Option<Operand> {
    if let Some(h) = w.strip_prefix("0f").or_else(|| w.strip_prefix("0F")) {
        return u32::from_str_radix(h, 16)
            .ok()
            .filter(|_| h.len() == 8)
            .map(Operand::F32);
    }
    if let Some(h) = w.strip_prefix("0d").or_else(|| w.strip_prefix("0D")) {
        return u64::from_str_radix(h, 16)
            .ok()
            .filter(|_| h.len() == 16)
            .map(Operand::F64);
    }
    if let Some(v) = parse_int(w) {
        return Some(Operand::Int(v));
    }
    if w.starts_with(|c: char| c.is_ascii_digit()) && w.contains(['.', 'e', 'E']) {
        return w.parse::<f64>().ok().map(|v| Operand::F64(v.to_bits()));
    }
    None
}

/// Little-endian bytes of one initializer value stored as `ty`.
fn init_bytes(v: Operand, ty: Ty, line: u32) -> Result<Vec<u8>> {
    let n = ty.bytes() as usize;
    let bits: u64 = match (v, ty) {
        (Operand::Int(i), Ty::F32) => (i as f32).to_bits() as u64,
        (Operand::Int(i), Ty::F64) => (i as f64).to_bits(),
        (Operand::Int(i), _) => i as u64,
        (Operand::F32(b), Ty::F64) => (f32::from_bits(b) as f64).to_bits(),
        (Operand::F32(b), _) => b as u64,
        (Operand::F64(b), Ty::F32) => (f64::from_bits(b) as f32).to_bits() as u64,
        (Operand::F64(b), _) => b,
        (other, _) => {
            return Err(SimError::parse(
                line,
                format!("unsupported initializer {other:?}"),
            ))
        }
    };
    Ok(bits.to_le_bytes()[..n].to_vec())
}
