//! Instruction semantics on hand-written PTX, for the forms NVRTC rarely emits: each test names
//! the PTX ISA rule it checks and runs one thread (or one warp) that writes its results to a
//! buffer.

use smelt_ptx_sim::{Arg, Dim3, ErrorKind, Launch, Module, Sim, SimError};

const HEADER: &str = ".version 8.8\n.target sm_80\n.address_size 64\n";

/// A module of one kernel `k(.param .u64 out)`: `decls` at module level, then the body with
/// registers declared and `%rd1` holding `out` as a global address.
fn kernel(decls: &str, body: &str) -> String {
    format!(
        "{HEADER}{decls}\n.visible .entry k(.param .u64 out)\n{{\n.reg .pred %p<4>;\n.reg .b32 %r<16>;\n\
         .reg .f32 %f<8>;\n.reg .b64 %rd<16>;\n.reg .f64 %fd<8>;\n\
         ld.param.u64 %rd1, [out];\ncvta.to.global.u64 %rd1, %rd1;\n{body}\nret;\n}}\n"
    )
}

fn launch(shared_bytes: u32) -> Launch {
    Launch {
        grid: Dim3::x(1),
        block: Dim3::x(1),
        shared_bytes,
    }
}

/// Runs `k` on one thread with `out` holding `init`; returns `out` afterwards.
#[track_caller]
fn run(text: &str, shared_bytes: u32, init: &[u8]) -> Vec<u8> {
    let m = Module::parse(text).unwrap_or_else(|e| panic!("does not parse: {e}\n{text}"));
    let mut sim = Sim::new();
    let out = sim.upload_bytes(init);
    let report = sim
        .launch(&m, "k", launch(shared_bytes), &[Arg::Ptr(out)])
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    sim.read_bytes(out)
}

/// Runs `k` on one thread and returns `n` u64 results.
#[track_caller]
fn run_u64(text: &str, n: usize) -> Vec<u64> {
    run(text, 0, &vec![0; n * 8])
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// Runs `k` on one thread and returns `n` u32 results.
#[track_caller]
fn run_u32(text: &str, shared_bytes: u32, n: usize) -> Vec<u32> {
    u32s(&run(text, shared_bytes, &vec![0; n * 4]))
}

fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

#[track_caller]
fn launch_err(text: &str) -> SimError {
    let m = Module::parse(text).unwrap_or_else(|e| panic!("does not parse: {e}\n{text}"));
    let mut sim = Sim::new();
    let out = sim.zeros(64);
    sim.launch(&m, "k", launch(0), &[Arg::Ptr(out)])
        .expect_err("the launch must fail")
}

/// An `.extern .shared` array starts after the static shared variables, and its name means
/// that address in every operand, not only in `mov`, `cvta` and memory addresses (PTX ISA 5.1.5,
/// 6.4: a variable's name as an operand is its address).
#[test]
fn dynamic_shared_array_address_is_the_same_in_every_operand() {
    let decls = ".shared .align 4 .b8 stat[20];\n.extern .shared .align 16 .b8 dyn[];";
    let body = "mov.u32 %r1, dyn;\n\
        add.u64 %rd2, dyn, 16;\ncvt.u32.u64 %r2, %rd2;\n\
        st.shared.u32 [stat], dyn;\nld.shared.u32 %r3, [stat];\n\
        cvta.shared.u64 %rd3, dyn;\ncvta.shared.u64 %rd4, stat;\nsub.u64 %rd5, %rd3, %rd4;\n\
        cvt.u32.u64 %r4, %rd5;\n\
        st.shared.u32 [dyn+4], 7;\nadd.u64 %rd6, dyn, 4;\nld.shared.u32 %r5, [%rd6];\n\
        setp.eq.u64 %p1, %rd6, dyn;\nselp.u32 %r6, 1, 2, %p1;\n\
        st.global.v4.u32 [%rd1], {%r1, %r2, %r3, %r4};\nst.global.v2.u32 [%rd1+16], {%r5, %r6};";
    let got = run_u32(&kernel(decls, body), 8, 6);
    assert_eq!(got, vec![32, 48, 32, 32, 7, 2]);
}

/// With `set_approx_error(n)` each f32 `.approx` result is n ulp off, up for some operands
/// and down for others, while the exactly defined cases (`ex2(0) = 1`, `ex2(-inf) = 0`) and
/// the correctly rounded instructions stay exact.
#[test]
fn approx_error_moves_approx_results_by_whole_ulps_and_leaves_exact_cases() {
    let inputs: Vec<f32> = vec![0.5, -1.25, 3.7, 0.1, -7.9, 1e-3, 0.0, f32::NEG_INFINITY];
    let n = inputs.len();
    let body = format!(
        "mov.u32 %r1, %tid.x;\nmul.wide.u32 %rd2, %r1, 4;\nadd.u64 %rd3, %rd1, %rd2;\n\
         ld.global.f32 %f1, [%rd3];\nex2.approx.f32 %f2, %f1;\nst.global.f32 [%rd3], %f2;\n\
         sqrt.rn.f32 %f3, %f1;\nst.global.f32 [%rd3+{}], %f3;",
        4 * n
    );
    let text = kernel("", &body);
    let m = Module::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let run_with = |ulps: u32| -> Vec<u32> {
        let mut sim = Sim::new();
        sim.set_approx_error(ulps);
        let mut init = inputs.clone();
        init.extend(vec![0.0; n]);
        let buf = sim.upload_bytes(
            &init
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<_>>(),
        );
        let one_block = Launch {
            grid: Dim3::x(1),
            block: Dim3::x(n as u32),
            shared_bytes: 0,
        };
        sim.launch(&m, "k", one_block, &[Arg::Ptr(buf)])
            .unwrap_or_else(|e| panic!("{e}"));
        u32s(&sim.read_bytes(buf))
    };
    let (exact, off) = (run_with(0), run_with(2));
    let moves: Vec<i64> = (0..n).map(|i| off[i] as i64 - exact[i] as i64).collect();
    // ex2 results are positive, so their bits move as their magnitude does.
    assert!(moves[..6].iter().all(|d| d.abs() == 2), "{moves:?}");
    assert!(
        moves[..6].contains(&2) && moves[..6].contains(&-2),
        "{moves:?}"
    );
    assert_eq!(
        (f32::from_bits(off[6]), f32::from_bits(off[7])),
        (1.0, 0.0),
        "exact cases"
    );
    assert_eq!(off[n..], exact[n..], "sqrt.rn is not approximate");
}

/// Shared memory is undefined when a block starts on a GPU; here it reads as 0xff bytes (NaN
/// as f32), static and dynamic alike, so a kernel that reads what it never wrote fails its
/// tests instead of finding zeros.
#[test]
fn shared_memory_a_block_never_wrote_reads_as_poison() {
    let decls = ".shared .align 4 .b8 stat[8];\n.extern .shared .align 16 .b8 dyn[];";
    let body = "ld.shared.u32 %r1, [stat+4];\nld.shared.f32 %f1, [dyn];\n\
        setp.nan.f32 %p1, %f1, %f1;\nselp.u32 %r2, 1, 0, %p1;\n\
        st.global.v2.u32 [%rd1], {%r1, %r2};";
    let got = run_u32(&kernel(decls, body), 8, 2);
    assert_eq!(got, vec![u32::MAX, 1]);
}

/// `.extern .shared` starts after every static shared variable, those declared in a function
/// body included, at its declared alignment when that is above the default 16 bytes.
#[test]
fn dynamic_shared_array_follows_all_static_variables_at_its_alignment() {
    let decls = ".shared .align 4 .b8 stat[20];\n.extern .shared .align 128 .b8 dyn[];";
    let body = ".shared .align 8 .b8 inner[120];\nmov.u32 %r1, inner;\nmov.u32 %r2, dyn;\n\
        st.global.v2.u32 [%rd1], {%r1, %r2};";
    assert_eq!(run_u32(&kernel(decls, body), 4, 2), vec![24, 256]);
}

/// `cvt.{rn,rz,rm,rp}.f64.{s64,u64}` rounds the integer once, in the given mode (PTX ISA
/// 9.7.9.21: integer-to-float conversions round with `.irnd`), also above 2^53 where not
/// every integer is a double.
#[test]
fn int64_to_f64_conversion_rounds_once_in_each_mode() {
    let two53_plus_1 = (1u64 << 53) + 1;
    let body = format!(
        "mov.u64 %rd2, {two53_plus_1};\nneg.s64 %rd3, %rd2;\nmov.u64 %rd4, -1;\n\
         cvt.rn.f64.s64 %fd1, %rd2;\nst.global.f64 [%rd1], %fd1;\n\
         cvt.rz.f64.s64 %fd1, %rd2;\nst.global.f64 [%rd1+8], %fd1;\n\
         cvt.rp.f64.s64 %fd1, %rd2;\nst.global.f64 [%rd1+16], %fd1;\n\
         cvt.rm.f64.s64 %fd1, %rd3;\nst.global.f64 [%rd1+24], %fd1;\n\
         cvt.rz.f64.s64 %fd1, %rd3;\nst.global.f64 [%rd1+32], %fd1;\n\
         cvt.rz.f64.u64 %fd1, %rd4;\nst.global.f64 [%rd1+40], %fd1;\n\
         cvt.rn.f64.u64 %fd1, %rd4;\nst.global.f64 [%rd1+48], %fd1;"
    );
    let got: Vec<f64> = run_u64(&kernel("", &body), 7)
        .into_iter()
        .map(f64::from_bits)
        .collect();
    let two53 = (1u64 << 53) as f64;
    assert_eq!(
        got,
        vec![
            two53,
            two53,
            two53 + 2.0,
            -(two53 + 2.0),
            -two53,
            18_446_744_073_709_549_568.0,
            18_446_744_073_709_551_616.0,
        ]
    );
}

/// `fma.{rz,rm,rp}.f64` rounds the exact `a * b + c` in its own mode (PTX ISA 9.7.4.6).
#[test]
fn f64_fma_rounds_in_each_mode() {
    // (1 + 2^-52)^2 = 1 + 2^-51 + 2^-104: nearest and toward zero give 1 + 2^-51.
    let a = 1f64.next_up().to_bits();
    let body = format!(
        "mov.b64 %fd1, 0d{a:016X};\nneg.f64 %fd2, %fd1;\nmov.f64 %fd3, 0d0000000000000000;\n\
         fma.rn.f64 %fd4, %fd1, %fd1, %fd3;\nst.global.f64 [%rd1], %fd4;\n\
         fma.rz.f64 %fd4, %fd1, %fd1, %fd3;\nst.global.f64 [%rd1+8], %fd4;\n\
         fma.rp.f64 %fd4, %fd1, %fd1, %fd3;\nst.global.f64 [%rd1+16], %fd4;\n\
         fma.rm.f64 %fd4, %fd2, %fd1, %fd3;\nst.global.f64 [%rd1+24], %fd4;\n\
         fma.rp.f64 %fd4, %fd2, %fd1, %fd3;\nst.global.f64 [%rd1+32], %fd4;\n\
         mov.f64 %fd5, 0d3FF8000000000000;\nmov.f64 %fd6, 0d3FD0000000000000;\n\
         fma.rp.f64 %fd4, %fd5, %fd5, %fd6;\nst.global.f64 [%rd1+40], %fd4;"
    );
    let got = run_u64(&kernel("", &body), 6);
    let up = 0x3ff0_0000_0000_0002u64;
    let sign = 1u64 << 63;
    assert_eq!(
        got,
        vec![up, up, up + 1, sign | (up + 1), sign | up, 2.5f64.to_bits()],
        "{got:x?}"
    );
}

/// `atom.add.f32` on global memory flushes subnormal inputs and results to sign-preserving
/// zero; on shared memory it keeps them (PTX ISA 9.7.13.5). The old value comes back as it was.
#[test]
fn f32_atomic_add_flushes_subnormals_on_global_memory_only() {
    let tiny = 1e-40f32.to_bits();
    let decls = ".shared .align 4 .f32 s;";
    let body = format!(
        "ld.global.f32 %f1, [%rd1];\nst.shared.f32 [s], %f1;\n\
         atom.global.add.f32 %f2, [%rd1], 0f{tiny:08X};\nst.global.f32 [%rd1+4], %f2;\n\
         atom.shared.add.f32 %f3, [s], 0f{tiny:08X};\nld.shared.f32 %f4, [s];\n\
         st.global.f32 [%rd1+8], %f4;"
    );
    let init: Vec<u8> = [tiny, 0, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let got = u32s(&run(&kernel(decls, &body), 0, &init));
    let doubled = (f32::from_bits(tiny) * 2.0).to_bits();
    assert_eq!(got, vec![0, tiny, doubled]);
}

/// `neg.ftz.f32` and `abs.ftz.f32` flush a subnormal input to a zero of its sign first (PTX ISA
/// 9.7.3.9, 9.7.3.8).
#[test]
fn f32_neg_and_abs_flush_subnormals_under_ftz() {
    let tiny = 1e-40f32.to_bits();
    let body = format!(
        "mov.b32 %f1, 0f{tiny:08X};\nneg.f32 %f2, %f1;\nneg.ftz.f32 %f3, %f1;\n\
         neg.f32 %f4, %f2;\nabs.ftz.f32 %f5, %f2;\nabs.f32 %f6, %f2;\n\
         st.global.v4.f32 [%rd1], {{%f2, %f3, %f4, %f5}};\nst.global.f32 [%rd1+16], %f6;"
    );
    let got = run_u32(&kernel("", &body), 0, 5);
    assert_eq!(got, vec![tiny | 1 << 31, 1 << 31, tiny, 0, tiny]);
}

/// `slct.ftz.f32` flushes a subnormal `c` to a zero of its sign, which is `>= 0` (PTX ISA,
/// `slct`: negative zero equals zero), so a negative subnormal picks `a`; without `.ftz` it
/// picks `b`.
#[test]
fn slct_ftz_flushes_a_subnormal_selector() {
    let neg_tiny = (-1e-40f32).to_bits();
    let body = format!(
        "mov.b32 %f1, 0f{neg_tiny:08X};\n\
         slct.ftz.u32.f32 %r1, 1, 2, %f1;\nslct.u32.f32 %r2, 1, 2, %f1;\n\
         mov.b32 %f2, 0f80000000;\nslct.u32.f32 %r3, 1, 2, %f2;\n\
         st.global.v2.u32 [%rd1], {{%r1, %r2}};\nst.global.u32 [%rd1+8], %r3;"
    );
    assert_eq!(run_u32(&kernel("", &body), 0, 3), vec![1, 2, 1]);
}

/// A vector access wider than 16 bytes is not something the interpreter runs: it says so when
/// the module is checked, and does not panic.
#[test]
fn vector_access_wider_than_16_bytes_is_unsupported() {
    for inst in [
        "ld.global.v4.u64 {%rd2, %rd3, %rd4, %rd5}, [%rd1];",
        "st.global.v4.f64 [%rd1], {%fd1, %fd1, %fd1, %fd1};",
    ] {
        let text = kernel("", &format!("mov.f64 %fd1, 0d0000000000000000;\n{inst}"));
        let e = Module::parse(&text)
            .expect("parses")
            .check()
            .expect_err(inst);
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{inst}: {e}");
        assert!(e.message().contains("32-byte"), "{inst}: {e}");
        assert_eq!(launch_err(&text).kind(), ErrorKind::Unsupported);
    }
}

/// A float atomic other than `add` (and the bitwise `exch`, `cas`, `and`, `or`, `xor`) has no
/// PTX meaning (PTX ISA, `atom`: the one floating-point operation is `.add`); it is reported
/// rather than run as an integer comparison of the float bits.
#[test]
fn float_atomic_min_max_inc_dec_are_unsupported() {
    for inst in [
        "atom.global.min.f32 %f1, [%rd1], %f2;",
        "atom.global.max.f64 %fd1, [%rd1], %fd2;",
        "red.global.inc.f32 [%rd1], %f2;",
    ] {
        let text = kernel(
            "",
            &format!("mov.f32 %f2, 0f00000000;\nmov.f64 %fd2, 0d0000000000000000;\n{inst}"),
        );
        let e = Module::parse(&text)
            .expect("parses")
            .check()
            .expect_err(inst);
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{inst}: {e}");
    }
}

/// A `cvt` to a signed integer type narrower than its destination register sign-extends the
/// result into the register, as `ld` does (PTX ISA 6.4.2, operand size exceeding the
/// instruction-type size); an unsigned type zero-extends.
#[test]
fn cvt_to_a_narrower_signed_type_sign_extends_into_the_register() {
    let body = "mov.u32 %r1, 255;\ncvt.s8.s32 %r2, %r1;\n\
        cvt.rzi.s8.f32 %r3, 0fC0400000;\ncvt.u8.s32 %r4, %r1;\n\
        mov.u32 %r5, 0x8000;\ncvt.s16.u32 %r6, %r5;\n\
        st.global.v4.u32 [%rd1], {%r2, %r3, %r4, %r6};\n\
        mov.u64 %rd2, 0xffffffff;\ncvt.s32.s64 %rd3, %rd2;\nst.global.u64 [%rd1+16], %rd3;";
    let out = run(&kernel("", body), 0, &[0; 24]);
    assert_eq!(
        u32s(&out[..16]),
        vec![0xffff_ffff, 0xffff_fffd, 0xff, 0xffff_8000]
    );
    assert_eq!(&out[16..], &[0xff; 8]);
}

/// `div.approx.f32` is `a * (1/b)` with `1/b` flushed to zero for 2^126 < |b| < 2^128: the
/// quotient is 0, or NaN for an infinite `a` (CUDA's `__fdividef`).
#[test]
fn div_approx_f32_gives_zero_for_divisors_above_2_to_the_126() {
    let body = "div.approx.f32 %f1, 0f3F800000, 0f7E800000;\n\
        div.approx.f32 %f2, 0f3F800000, 0f7E800001;\n\
        div.approx.f32 %f3, 0f40000000, 0fFF7FFFFF;\n\
        div.approx.f32 %f4, 0f7F800000, 0f7F000000;\n\
        st.global.v4.f32 [%rd1], {%f1, %f2, %f3, %f4};";
    let got = run_u32(&kernel("", body), 0, 4);
    assert_eq!(got[..3], [0x0080_0000, 0, 0x8000_0000], "{got:x?}");
    assert!(f32::from_bits(got[3]).is_nan(), "{got:x?}");
}

/// `brx.idx` takes a 32-bit index: a wider value is out of range, not truncated.
#[test]
fn brx_idx_index_beyond_32_bits_is_out_of_range() {
    let body = "mov.u64 %rd2, 0x100000001;\nTABLE: .branchtargets L0, L1;\nbrx.idx %rd2, TABLE;\n\
        L0:\nbra DONE;\nL1:\nbra DONE;\nDONE:";
    let e = launch_err(&kernel("", body));
    assert_eq!(e.kind(), ErrorKind::Trap, "{e}");
    assert!(e.message().contains("brx.idx index 4294967297"), "{e}");
}

/// `mov` packs or unpacks 2 or 4 parts that make up its type exactly; a float literal has no
/// meaning as an f16 or bf16 operand.
#[test]
fn malformed_mov_parts_and_half_float_literals_are_errors() {
    for (inst, want) in [
        ("mov.b32 {%r1, %r2, %r3}, %r4;", "into 3 parts"),
        ("mov.b32 %r1, {%r2, %r3, %r4};", "into 3 parts"),
        ("mov.b16 %rs1, {%r2, %r3, %r4, %r5};", "into 4 parts"),
        ("add.f16 %rs1, %rs2, 0f3F800000;", "float literal"),
        ("add.f16x2 %r1, %r2, 0f3F800000;", "float literal"),
        (
            "mov.b16 %rs1, 0x3C00;\nfma.rn.bf16 %rs1, %rs1, %rs1, 1.5;",
            "float literal",
        ),
    ] {
        let text = kernel("", &format!(".reg .b16 %rs<4>;\n{inst}"));
        let e = launch_err(&text);
        assert_eq!(e.kind(), ErrorKind::Parse, "{inst}: {e}");
        assert!(e.message().contains(want), "{inst}: {e}");
    }
    let body = ".reg .b16 %rs<4>;\nmov.b32 %r1, 0x3C004000;\nmov.b32 {%rs1, %rs2}, %r1;\n\
        mov.b64 %rd2, {%r1, %r1};\nmov.b32 %r2, 0f3F800000;\nst.global.v2.u32 [%rd1], {%r2, %r1};";
    assert_eq!(
        run_u32(&kernel("", body), 0, 2),
        vec![0x3f80_0000, 0x3c00_4000]
    );
}

/// `%q1<3>` declares `%q10` to `%q12`; `%r<16>` declares `%r0` to `%r15` and not `%r07`.
#[test]
fn numbered_register_names_resolve_by_prefix_and_number() {
    let body =
        ".reg .b32 %q1<3>;\nmov.u32 %q12, 7;\nmov.u32 %r15, %q12;\nst.global.u32 [%rd1], %r15;";
    assert_eq!(run_u32(&kernel("", body), 0, 1), vec![7]);
    for name in ["%r07", "%r16", "%q13", "%q1"] {
        let body = format!(".reg .b32 %q1<3>;\nmov.u32 {name}, 7;");
        let e = launch_err(&kernel("", &body));
        assert_eq!(e.kind(), ErrorKind::Parse, "{name}: {e}");
        assert!(
            e.message()
                .contains(&format!("{name} is not a declared register")),
            "{name}: {e}"
        );
    }
}

/// Runs `inst %fd4, %fd1[, %fd2[, %fd3]]` for each case, its operands given as f64 bits, and
/// returns the results' bits.
#[track_caller]
fn run_f64_insts(cases: &[(&str, &[u64])]) -> Vec<u64> {
    let body: String = cases
        .iter()
        .enumerate()
        .map(|(i, (inst, ops))| {
            let movs: String = ops
                .iter()
                .enumerate()
                .map(|(j, v)| format!("mov.b64 %fd{}, 0d{v:016X};\n", j + 1))
                .collect();
            let regs: Vec<String> = (1..=ops.len()).map(|j| format!("%fd{j}")).collect();
            format!(
                "{movs}{inst} %fd4, {};\nst.global.f64 [%rd1+{}], %fd4;\n",
                regs.join(", "),
                8 * i
            )
        })
        .collect();
    run_u64(&kernel("", &body), cases.len())
}

/// `.rz`, `.rm` and `.rp` f64 results that overflow give the largest finite value or infinity
/// as IEEE 754 says for the mode, and tiny results round to the subnormal grid in the mode
/// (PTX ISA 9.7.4: rounding modifiers), also where the rounding error is below the smallest
/// subnormal.
#[test]
fn f64_directed_rounding_at_overflow_and_underflow() {
    let max = f64::MAX.to_bits();
    let inf = f64::INFINITY.to_bits();
    let sign = 1u64 << 63;
    let (tiny, three_quarters, one) = (1u64, 0.75f64.to_bits(), 1f64.to_bits());
    let two_m600 = 2f64.powi(-600).to_bits();
    let three_tiny = 3u64;
    // sqrt(3 * 2^-1074) = sqrt(3) * 2^-537, the root of 3 rounded down and up.
    let s = 3f64.sqrt();
    let (s_down, s_up) = if s.mul_add(-s, 3.0) > 0.0 {
        (s, s.next_up())
    } else {
        (s.next_down(), s)
    };
    let scale = |x: f64| (x * 2f64.powi(-537)).to_bits();
    let cases: [(&str, &[u64], u64); 22] = [
        ("add.rn.f64", &[max, max], inf),
        ("add.rz.f64", &[max, max], max),
        ("add.rm.f64", &[max, max], max),
        ("add.rp.f64", &[max, max], inf),
        ("add.rm.f64", &[sign | max, sign | max], sign | inf),
        ("sub.rp.f64", &[sign | max, max], sign | max),
        ("mul.rm.f64", &[max, max], max),
        ("mul.rp.f64", &[sign | max, max], sign | max),
        ("mul.rz.f64", &[sign | max, max], sign | max),
        ("mul.rz.f64", &[tiny, three_quarters], 0),
        ("mul.rm.f64", &[sign | tiny, three_quarters], sign | tiny),
        ("mul.rp.f64", &[tiny, three_quarters], tiny),
        ("div.rz.f64", &[tiny, 1.5f64.to_bits()], 0),
        ("div.rp.f64", &[tiny, 1.5f64.to_bits()], tiny),
        ("rcp.rz.f64", &[tiny], max),
        ("rcp.rp.f64", &[tiny], inf),
        ("sqrt.rm.f64", &[three_tiny], scale(s_down)),
        ("sqrt.rp.f64", &[three_tiny], scale(s_up)),
        ("fma.rz.f64", &[tiny, three_quarters, 0], 0),
        (
            "fma.rp.f64",
            &[two_m600, two_m600, one],
            1f64.next_up().to_bits(),
        ),
        (
            "fma.rm.f64",
            &[sign | two_m600, two_m600, one],
            1f64.next_down().to_bits(),
        ),
        ("fma.rz.f64", &[max, max, sign | max], max),
    ];
    let insts: Vec<(&str, &[u64])> = cases.iter().map(|&(i, ops, _)| (i, ops)).collect();
    let got = run_f64_insts(&insts);
    for ((inst, ops, want), got) in cases.iter().zip(got) {
        assert_eq!(got, *want, "{inst} {ops:x?}: got {got:#x}, want {want:#x}");
    }
}
