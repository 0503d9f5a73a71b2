//! A small command-line parser: `--flag`, `--key value` (repeatable), and positional words.

use std::collections::HashMap;

/// Parsed command line after the subcommand words.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, Vec<String>>,
    flags: Vec<String>,
    /// Words that are not options, in order.
    pub positional: Vec<String>,
}

impl Args {
    /// Parses `raw`; `flag_names` lists the options that take no value.
    pub fn parse(raw: &[String], flag_names: &[&str]) -> Result<Args, String> {
        let mut args = Args::default();
        let mut iter = raw.iter();
        while let Some(word) = iter.next() {
            let Some(name) = word.strip_prefix("--") else {
                args.positional.push(word.clone());
                continue;
            };
            if flag_names.contains(&name) {
                args.flags.push(name.to_string());
                continue;
            }
            let value = iter
                .next()
                .ok_or_else(|| format!("option --{name} needs a value"))?;
            args.values
                .entry(name.to_string())
                .or_default()
                .push(value.clone());
        }
        Ok(args)
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

    /// Rejects options outside `known` (so a typo is an error, not silently ignored).
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        let given = self.values.keys().chain(self.flags.iter());
        match given.into_iter().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!("unknown option --{k}")),
            None => Ok(()),
        }
    }
}
