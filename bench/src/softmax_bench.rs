//! `smelt bench softmax`: row softmax against a plain copy of the same bytes (the memory
//! bandwidth it could reach at best), both inside the same thread pool, interleaved.

use crate::args::{elements, parse_dims, Args};
use crate::report::{Row, Value};
use crate::timing::interleaved;
use rayon::prelude::*;
use smelt_kernels::cpu::softmax::softmax;
use smelt_kernels::cpu::threads::install;
use smelt_kernels::cpu::CpuOptions;
use std::time::Duration;

/// Runs the softmax benchmark and returns its rows.
pub fn run(args: &Args, threads: usize) -> Result<Vec<Row>, String> {
    let shapes = if args.all("shape").is_empty() {
        vec![(12288, 128), (12288, 512)]
    } else {
        args.all("shape")
            .iter()
            .map(|s| {
                let [r, c] = parse_dims::<2>(s, "12288x128 (ROWSxCOLS)")?;
                elements("--shape", &[r, c])?;
                Ok::<_, String>((r, c))
            })
            .collect::<Result<_, _>>()?
    };
    let budget = Duration::from_millis(args.get("budget-ms", 1000)?);
    let isa = args.isa()?;
    let opts = CpuOptions::threads(threads).isa(isa);
    let mut rows = Vec::new();
    for (r, c) in shapes {
        let x: Vec<f32> = (0..r * c)
            .map(|i| ((i * 7919) % 1009) as f32 * 0.01 - 5.0)
            .collect();
        let mut y = vec![0.0f32; r * c];
        let mut copy = vec![0.0f32; r * c];
        let mut error = None;
        let chunk = (r * c).div_ceil(threads);
        // Both run inside our kernels' pool, as the model's ops do (a call from outside pays a
        // hand-over to the pool each time), and the copy on that same pool: a second pool's
        // idle workers would spin on the same cores after each copy and slow what runs next.
        let t = install(threads, || {
            let mut ours = || {
                if let Err(e) = softmax(&x, &mut y, r, c, 1.0, None, &opts) {
                    error = Some(e.to_string());
                }
            };
            let mut plain_copy = || {
                if threads == 1 {
                    // No pool on one thread: rayon would hand the work to its global pool.
                    copy.copy_from_slice(&x);
                } else {
                    copy.par_chunks_mut(chunk)
                        .zip(x.par_chunks(chunk))
                        .for_each(|(dst, src)| dst.copy_from_slice(src))
                }
            };
            interleaved(&mut [&mut ours, &mut plain_copy], 10, budget)
        });
        if let Some(e) = error {
            return Err(e);
        }
        let bytes = 2.0 * (r * c * 4) as f64;
        let copy_gbps = bytes / t[1] / 1e9;
        for (name, secs, kernels) in [("smelt", t[0], isa.name()), ("copy", t[1], "-")] {
            let gbps = bytes / secs / 1e9;
            rows.push(Row(vec![
                ("impl", Value::Text(name.into())),
                ("op", Value::Text("softmax".into())),
                ("rows", Value::Int(r)),
                ("cols", Value::Int(c)),
                ("threads", Value::Int(threads)),
                ("isa", Value::Text(kernels.into())),
                ("median_ms", Value::Num(secs * 1e3)),
                ("gbps", Value::Num(gbps)),
                ("of_copy", Value::Num(gbps / copy_gbps)),
            ]));
        }
    }
    Ok(rows)
}
