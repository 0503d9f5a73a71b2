//! A small command-line parser: `--flag`, `--key value` (repeatable), and positional words.

use smelt_kernels::cpu::Isa;
use std::collections::HashMap;

/// Parsed command line after the subcommand words.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, Vec<String>>,
    flags: Vec<String>,
    /// Options given without a value (at the end of the line, or followed by another
    /// option), reported by [`Args::only`] after any unknown option.
    missing_value: Vec<String>,
    /// Words that are not options, in order.
    pub positional: Vec<String>,
    /// Whether `--help` or `-h` was given (anywhere an option can be).
    pub help: bool,
}

impl Args {
    /// Parses `raw`; `flag_names` lists the options that take no value. Every other
    /// `--name` takes the next word as its value, unless that word is an option itself. The
    /// word `--` ends the options: every word after it is positional (a text `--help`, say).
    pub fn parse(raw: &[String], flag_names: &[&str]) -> Args {
        let mut args = Args::default();
        let mut iter = raw.iter().peekable();
        while let Some(word) = iter.next() {
            if word == "--" {
                args.positional.extend(iter.cloned());
                break;
            }
            if word == "--help" || word == "-h" {
                args.help = true;
                continue;
            }
            let Some(name) = word.strip_prefix("--") else {
                args.positional.push(word.clone());
                continue;
            };
            if flag_names.contains(&name) {
                args.flags.push(name.to_string());
                continue;
            }
            match iter.next_if(|next| !next.starts_with("--")) {
                Some(value) => args
                    .values
                    .entry(name.to_string())
                    .or_default()
                    .push(value.clone()),
                None => args.missing_value.push(name.to_string()),
            }
        }
        args
    }

    /// Whether `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// Every value given to `--name`, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    /// The last value of `--name` parsed as `T`, or `default` when absent.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.all(name).last() {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot parse {v:?}")),
        }
    }

    /// `--name N` as a count in `1..=max` (`default` when absent): zero, or a count large
    /// enough to exhaust memory before the work starts, is an error naming the option.
    pub fn count(&self, name: &str, default: usize, max: usize) -> Result<usize, String> {
        self.count_from(name, default, 1, max)
    }

    /// `--name N` as a count in `min..=max` (`default` when absent); anything else is an error
    /// naming the option and the range.
    pub fn count_from(
        &self,
        name: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, String> {
        let n: usize = self.get(name, default)?;
        if !(min..=max).contains(&n) {
            return Err(format!("--{name} must be between {min} and {max}, got {n}"));
        }
        Ok(n)
    }

    /// `--threads N`, every core by default; refused outside `1..=`[`max_threads`] of this
    /// machine's cores, with a message naming the option and the core count.
    pub fn threads(&self) -> Result<usize, String> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let max = max_threads(cores);
        let n: usize = self.get("threads", cores.min(max))?;
        if !(1..=max).contains(&n) {
            return Err(format!(
                "--threads must be between 1 and {max}, got {n}: this machine has {cores} \
                 cores (the limit is {THREADS_PER_CORE} threads per core, at least \
                 {MIN_THREAD_LIMIT})"
            ));
        }
        Ok(n)
    }

    /// `--isa NAME`, the instruction set of our kernels (default: the fastest this CPU has); a
    /// name that is none, or one this CPU cannot run, is an error listing those it can.
    pub fn isa(&self) -> Result<Isa, String> {
        let Some(name) = self.all("isa").last() else {
            return Ok(Isa::detect());
        };
        let can = Isa::supported()
            .map(Isa::name)
            .collect::<Vec<_>>()
            .join(", ");
        match Isa::from_name(name) {
            Some(isa) if isa.is_supported() => Ok(isa),
            Some(isa) => Err(format!(
                "--isa {isa}: this CPU cannot run those kernels (it can: {can})"
            )),
            None => Err(format!(
                "--isa {name:?}: not an instruction set (this CPU can run: {can})"
            )),
        }
    }

    /// Rejects options outside `known` (so a typo is an error, not silently ignored), then
    /// a known option given without its value.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        let given = self
            .values
            .keys()
            .chain(&self.flags)
            .chain(&self.missing_value);
        if let Some(k) = given.into_iter().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("unknown option --{k}"));
        }
        match self.missing_value.first() {
            Some(k) => Err(format!("option --{k} needs a value")),
            None => Ok(()),
        }
    }
}

/// Parses `N` positive sizes written `AxBx...` (the value of a `--shape` option); `example`
/// shows the expected form in the error.
pub fn parse_dims<const N: usize>(s: &str, example: &str) -> Result<[usize; N], String> {
    let bad = || format!("--shape {s:?}: expected {N} positive sizes like {example}");
    let dims: Vec<usize> = s
        .split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let dims: [usize; N] = dims.try_into().map_err(|_| bad())?;
    if dims.contains(&0) {
        return Err(bad());
    }
    Ok(dims)
}

/// Most threads a command may run per core of the machine. Every worker of the pool holds
/// its own GEMM pack buffers (about 8 MB) and spins while a step runs, so far more threads
/// than cores only cost memory and time: `--threads 1000` on 2 cores took 23 s and 8.7 GB
/// for a run of the tiny fixture that takes 0.1 s. A few per core still let a run measure
/// oversubscription.
const THREADS_PER_CORE: usize = 4;

/// The thread limit of the smallest machines, so a run on 8 threads (a test of the thread
/// team, of `matrixmultiply`'s at most 4) works everywhere.
const MIN_THREAD_LIMIT: usize = 8;

/// The most `--threads` on a machine of `cores` cores: [`THREADS_PER_CORE`] per core (at
/// least [`MIN_THREAD_LIMIT`]), never more than the thread pool's own maximum.
fn max_threads(cores: usize) -> usize {
    use smelt_kernels::cpu::threads::MAX_THREADS;
    cores
        .saturating_mul(THREADS_PER_CORE)
        .clamp(MIN_THREAD_LIMIT, MAX_THREADS)
}

/// Most timed runs, rounds or steps a command may ask for.
pub const MAX_RUNS: usize = 100_000;

/// Most elements one benchmark buffer may hold (1 GiB of f32: a run makes several).
pub const MAX_ELEMENTS: usize = 1 << 28;

/// The number of elements of a buffer of `dims` (named `what` in the error), when it is at
/// most [`MAX_ELEMENTS`].
pub fn elements(what: &str, dims: &[usize]) -> Result<usize, String> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            let shape: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!(
                "{what} of {} elements is too large (at most {MAX_ELEMENTS})",
                shape.join(" x ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_or_name_the_problem() {
        assert_eq!(
            parse_dims::<3>("1024x768x3072", "MxKxN"),
            Ok([1024, 768, 3072])
        );
        assert_eq!(parse_dims::<2>("12288x128", "RxC"), Ok([12288, 128]));
        for bad in ["12x3", "1x2x3x4", "0x2x3", "ax2x3", ""] {
            let err = parse_dims::<3>(bad, "MxKxN").unwrap_err();
            assert!(
                err.contains("expected 3 positive sizes like MxKxN"),
                "{err}"
            );
        }
    }

    #[test]
    fn words_after_a_double_dash_are_positional() {
        let raw: Vec<String> = ["--model", "m", "a", "--", "--help", "-h", "--threads", "2"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        let args = Args::parse(&raw, &[]);
        assert!(!args.help);
        assert_eq!(args.positional, ["a", "--help", "-h", "--threads", "2"]);
        assert_eq!(args.all("model"), ["m"]);
        assert!(args.only(&["model"]).is_ok());
    }

    #[test]
    fn isa_names_an_instruction_set_this_cpu_runs() {
        let raw = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let isa = |words: &[&str]| Args::parse(&raw(words), &[]).isa();
        assert_eq!(isa(&[]), Ok(Isa::detect()));
        assert_eq!(isa(&["--isa", "portable"]), Ok(Isa::Portable));
        let err = isa(&["--isa", "sse9"]).unwrap_err();
        assert!(err.contains("not an instruction set"), "{err}");
        assert!(err.contains("portable"), "{err}");
        for candidate in Isa::ALL {
            let got = isa(&["--isa", candidate.name()]);
            if candidate.is_supported() {
                assert_eq!(got, Ok(candidate));
            } else {
                assert!(got.unwrap_err().contains("cannot run"));
            }
        }
    }

    #[test]
    fn unknown_options_are_named_before_missing_values_and_help_is_found_anywhere() {
        let raw = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let only = |words: &[&str]| Args::parse(&raw(words), &["json"]).only(&["steps", "json"]);
        assert_eq!(only(&["--steps", "3", "--json"]), Ok(()));
        assert_eq!(only(&["--jsn"]), Err("unknown option --jsn".into()));
        assert_eq!(
            only(&["--jsn", "--steps", "3"]),
            Err("unknown option --jsn".into())
        );
        assert_eq!(
            only(&["--steps"]),
            Err("option --steps needs a value".into())
        );
        assert_eq!(
            only(&["--steps", "--json"]),
            Err("option --steps needs a value".into())
        );
        let args = Args::parse(&raw(&["--steps", "3", "--help"]), &[]);
        assert!(args.help && args.positional.is_empty());
        assert_eq!(args.get("steps", 0), Ok(3));
    }

    #[test]
    fn thread_counts_are_bounded_by_the_cores() {
        assert_eq!(max_threads(1), MIN_THREAD_LIMIT);
        assert_eq!(max_threads(2), 8);
        assert_eq!(max_threads(16), 64);
        assert_eq!(
            max_threads(usize::MAX),
            smelt_kernels::cpu::threads::MAX_THREADS
        );
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let raw = |n: usize| vec!["--threads".to_string(), n.to_string()];
        let threads = |n: usize| Args::parse(&raw(n), &[]).threads();
        assert_eq!(threads(1), Ok(1));
        assert_eq!(threads(cores), Ok(cores));
        assert_eq!(Args::default().threads(), Ok(cores.min(max_threads(cores))));
        let err = threads(max_threads(cores) + 1).unwrap_err();
        assert!(
            err.starts_with("--threads must be between 1 and ")
                && err.contains(&format!("this machine has {cores} cores")),
            "{err}"
        );
    }

    #[test]
    fn counts_and_buffer_sizes_have_bounds() {
        let raw = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let args = Args::parse(&raw(&["--runs", "0", "--steps", "7"]), &[]);
        assert!(args
            .count("runs", 3, 10)
            .unwrap_err()
            .contains("--runs must be between 1 and 10, got 0"));
        assert_eq!(args.count("steps", 5, 10), Ok(7));
        assert_eq!(args.count("rounds", 3, 10), Ok(3));
        assert_eq!(
            args.count_from("steps", 5, 8, 10).unwrap_err(),
            "--steps must be between 8 and 10, got 7"
        );
        assert_eq!(elements("A", &[2, 3, 4]), Ok(24));
        for dims in [[1usize << 32, 1 << 32, 1], [1 << 16, 1 << 16, 2]] {
            let err = elements("A", &dims).unwrap_err();
            assert!(err.contains("A of") && err.contains("too large"), "{err}");
        }
    }
}
