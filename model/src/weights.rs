//! Where parameter values come from: a HF `model.safetensors` (memory-mapped, F32 used in
//! place) or a seeded random initialisation; and [`Params`], the named list a model keeps.

use smelt_engine::formats::safetensors::SafeTensors;
use smelt_engine::{Error, Result, Tensor};
use std::path::Path;

/// One parameter: its value and the name it has in the checkpoint (HF's name).
#[derive(Clone, Debug)]
pub struct Param {
    /// The checkpoint name, e.g. `bert.encoder.layer.0.attention.self.query.weight`.
    pub name: String,
    /// The value, `[out, in]` for linear weights as in HF.
    pub tensor: Tensor,
}

/// The parameters of a model in a fixed order; layers refer to them by index.
#[derive(Clone, Debug, Default)]
pub struct Params {
    list: Vec<Param>,
}

impl Params {
    /// Appends a parameter and returns its index.
    pub(crate) fn push(&mut self, name: String, tensor: Tensor) -> usize {
        self.list.push(Param { name, tensor });
        self.list.len() - 1
    }

    /// All parameters, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.list.iter()
    }

    /// Mutable access for an optimizer.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Param> {
        self.list.iter_mut()
    }

    /// Parameter `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&Param> {
        self.list.get(i)
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Total number of values.
    pub fn numel(&self) -> usize {
        self.list.iter().map(|p| p.tensor.numel()).sum()
    }
}

/// A provider of parameter values by HF name (without the model prefix).
pub trait WeightSource {
    /// The tensor named `name` (or `prefix + name`), which must have shape `dims`, and the
    /// name under which it was found. Errors name the tensor and both shapes.
    fn load(&self, name: &str, dims: &[usize]) -> Result<(String, Tensor)>;

    /// Whether a tensor `name` (or `prefix + name`) exists.
    fn contains(&self, name: &str) -> bool;
}

/// Weights from a HF `model.safetensors`, F32 data used in place from the mapping.
pub struct Checkpoint {
    file: SafeTensors,
    prefix: &'static str,
}

impl Checkpoint {
    /// Maps `path`; names are looked up as given and with `prefix` (`bert.` or `distilbert.`).
    pub fn open(path: &Path, prefix: &'static str) -> Result<Checkpoint> {
        Ok(Checkpoint {
            file: SafeTensors::open(path)?,
            prefix,
        })
    }

    /// Errors when the file holds a tensor of a layer past the config's `layers`
    /// (`{root}.{i}.*` with `i >= layers`, with or without the prefix; `root` is
    /// `encoder.layer` or `transformer.layer`): a config of fewer layers than its checkpoint
    /// would silently drop the others.
    pub(crate) fn check_layer_count(&self, root: &str, layers: usize) -> Result<()> {
        let layer_of = |name: &str| -> Option<usize> {
            let bare = name.strip_prefix(self.prefix).unwrap_or(name);
            let rest = bare.strip_prefix(root)?.strip_prefix('.')?;
            let (index, _) = rest.split_once('.')?;
            index.parse().ok()
        };
        let past = self
            .file
            .names()
            .find_map(|name| layer_of(name).filter(|&i| i >= layers).map(|i| (name, i)));
        match past {
            Some((name, i)) => Err(Error::Format {
                file: self.file.file().to_string(),
                detail: format!(
                    "tensor '{name}' belongs to layer {i}, but the config has {layers} \
                     layers (num_hidden_layers / n_layers)"
                ),
            }),
            None => Ok(()),
        }
    }

    /// Errors when two tensors of the file are spellings of one parameter (with and without
    /// the prefix, or a layer norm's `weight`/`bias` beside its legacy `gamma`/`beta`): two
    /// values for one parameter, and no telling which one HF would load.
    pub(crate) fn check_unambiguous(&self) -> Result<()> {
        let mut seen: Vec<(String, &str)> = Vec::new();
        for name in self.file.names() {
            let bare = name.strip_prefix(self.prefix).unwrap_or(name);
            let canonical = modern_spelling(bare).unwrap_or_else(|| bare.to_string());
            if let Some((_, first)) = seen.iter().find(|(c, _)| *c == canonical) {
                return Err(Error::Format {
                    file: self.file.file().to_string(),
                    detail: format!(
                        "tensors '{first}' and '{name}' are both the parameter '{canonical}': \
                         which one it is is ambiguous"
                    ),
                });
            }
            seen.push((canonical, name));
        }
        Ok(())
    }

    /// The name `name` has in the file, if any: as given, with the prefix, or (for a layer
    /// norm) in its legacy spelling, with or without the prefix.
    fn find(&self, name: &str) -> Option<String> {
        self.spellings(name)
            .into_iter()
            .find(|n| self.file.info(n).is_some())
    }

    /// Every name the parameter `name` may have in the file, `name` first.
    fn spellings(&self, name: &str) -> Vec<String> {
        [Some(name.to_string()), legacy_spelling(name)]
            .into_iter()
            .flatten()
            .flat_map(|n| [format!("{}{n}", self.prefix), n].into_iter().rev())
            .collect()
    }
}

/// Old checkpoints (the original `bert-base-*` among them) name a layer norm's parameters
/// `LayerNorm.gamma` and `LayerNorm.beta`; HF renames them to `weight` and `bias` on load.
const LEGACY_NORM: [(&str, &str); 2] = [
    ("LayerNorm.weight", "LayerNorm.gamma"),
    ("LayerNorm.bias", "LayerNorm.beta"),
];

/// `name` in its legacy spelling, if it has one.
fn legacy_spelling(name: &str) -> Option<String> {
    LEGACY_NORM
        .iter()
        .find_map(|(modern, old)| name.strip_suffix(modern).map(|head| format!("{head}{old}")))
}

/// A legacy `name` in the spelling HF renames it to, if it is one.
fn modern_spelling(name: &str) -> Option<String> {
    LEGACY_NORM
        .iter()
        .find_map(|(modern, old)| name.strip_suffix(old).map(|head| format!("{head}{modern}")))
}

impl WeightSource for Checkpoint {
    fn load(&self, name: &str, dims: &[usize]) -> Result<(String, Tensor)> {
        let Some(found) = self.find(name) else {
            return Err(Error::Format {
                file: self.file.file().to_string(),
                detail: format!(
                    "missing tensor '{name}' (also looked for '{}'), expected shape {dims:?}",
                    self.spellings(name)[1..].join("', '")
                ),
            });
        };
        let tensor = self.file.tensor_f32(&found)?;
        if tensor.dims() != dims {
            return Err(Error::Format {
                file: self.file.file().to_string(),
                detail: format!(
                    "tensor '{found}' has shape {:?}, the config needs {dims:?}",
                    tensor.dims()
                ),
            });
        }
        Ok((found, tensor))
    }

    fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

/// Seeded random weights shaped like HF's initialisation: linear and embedding weights
/// `N(0, 0.02)`, layer-norm weights 1, biases 0. Used by `smelt demo` and the benchmarks.
pub struct RandomInit {
    seed: u64,
}

impl RandomInit {
    /// A source whose values depend only on `seed` and each tensor's name.
    pub fn new(seed: u64) -> RandomInit {
        RandomInit { seed }
    }
}

impl WeightSource for RandomInit {
    /// Errors, naming the tensor and shape, when its element count overflows `usize` or its
    /// values cannot be allocated (sizes come from a config file).
    fn load(&self, name: &str, dims: &[usize]) -> Result<(String, Tensor)> {
        let error = |what: &str| Error::Shape {
            op: "RandomInit",
            detail: format!("tensor '{name}' of shape {dims:?}: {what}"),
        };
        let n = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| error("more elements than fit in usize"))?;
        let mut values = Vec::new();
        values
            .try_reserve_exact(n)
            .map_err(|_| error(&format!("cannot allocate {n} values")))?;
        if name.ends_with("bias") {
            values.resize(n, 0.0);
        } else if name.contains("LayerNorm") || name.contains("layer_norm") {
            values.resize(n, 1.0);
        } else {
            values.extend(normal_values(tensor_seed(self.seed, name), 0.02).take(n));
        }
        Ok((name.to_string(), Tensor::from_vec(dims, values)?))
    }

    fn contains(&self, _name: &str) -> bool {
        true
    }
}

/// The seed of tensor `name`'s values under the model seed `seed` (FNV-1a style over the name).
fn tensor_seed(seed: u64, name: &str) -> u64 {
    name.bytes()
        .fold(seed, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// An endless stream of values from `N(0, std^2)` (Box-Muller over a 64-bit LCG),
/// reproducible from `seed`.
fn normal_values(seed: u64, std: f32) -> impl Iterator<Item = f32> {
    let mut state = seed ^ 0x9e3779b97f4a7c15;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    std::iter::repeat_with(move || {
        let (u1, u2) = (uniform(), uniform());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (z * std as f64) as f32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes from a config that overflow or cannot be allocated are errors naming the tensor,
    /// not a panic or an abort; ordinary ones are filled as before.
    #[test]
    fn random_init_refuses_impossible_sizes() {
        let init = RandomInit::new(7);
        let err = init
            .load("w.weight", &[1 << 40, 1 << 40])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "RandomInit: tensor 'w.weight' of shape [1099511627776, 1099511627776]: more elements than fit in usize"
        );
        let err = init.load("w.weight", &[1 << 62]).unwrap_err().to_string();
        assert!(
            err.ends_with("cannot allocate 4611686018427387904 values"),
            "{err}"
        );
        let (_, w) = init.load("w.weight", &[3, 4]).unwrap();
        let arena = smelt_engine::Arena::new();
        assert_eq!(
            w.to_vec(&arena).unwrap(),
            normal_values(tensor_seed(7, "w.weight"), 0.02)
                .take(12)
                .collect::<Vec<_>>()
        );
        let (_, b) = init.load("w.bias", &[2]).unwrap();
        assert_eq!(b.to_vec(&arena).unwrap(), [0.0, 0.0]);
    }
}
