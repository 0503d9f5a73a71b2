//! The HuggingFace safetensors format: reading (memory-mapped, F32 used in place) and writing.
//!
//! A file is an 8-byte little-endian header length `N`, `N` bytes of JSON header, then the data
//! buffer. The header maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`
//! (offsets relative to the start of the data buffer) and may hold `"__metadata__"`, an object of
//! strings. Elements are little-endian and row-major.
//!
//! [`SafeTensors::open`] and [`SafeTensors::from_bytes`] validate the whole header before
//! returning, so that reading a tensor afterwards cannot go out of bounds: every failure is an
//! [`Error::Format`] that names the file and, where it applies, the tensor, whatever the bytes.

use super::half::{bf16_to_f32, f16_to_f32};
use super::json::{self, Json, MAX_EXACT_INTEGER};
use crate::{Error, ExternalData, Result, Tensor, MAX_RANK};
use memmap2::Mmap;
use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// The largest header [`SafeTensors`] accepts, in bytes (the limit of the Python library).
pub const MAX_HEADER_BYTES: usize = 100_000_000;

/// The most items an array of a header may hold: its arrays are shapes and `data_offsets`,
/// far shorter, and a longer one (a shape of 50 million zeros) would cost many times the
/// header's bytes in memory before any check.
pub const MAX_HEADER_ARRAY: usize = 1024;

/// How many names the message for a missing tensor lists.
const NAMES_SHOWN: usize = 4;

/// The element type of a stored tensor, as the format names it (`Dtype::Bf16` is `"BF16"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// `"BOOL"`: one byte, 0 or 1.
    Bool,
    /// `"U8"`.
    U8,
    /// `"I8"`.
    I8,
    /// `"F8_E5M2"`: 8-bit float, 5 exponent and 2 mantissa bits.
    F8E5M2,
    /// `"F8_E4M3"`: 8-bit float, 4 exponent and 3 mantissa bits.
    F8E4M3,
    /// `"I16"`.
    I16,
    /// `"U16"`.
    U16,
    /// `"F16"`: IEEE 754 half precision.
    F16,
    /// `"BF16"`: bfloat16, the top half of an f32.
    Bf16,
    /// `"I32"`.
    I32,
    /// `"U32"`.
    U32,
    /// `"F32"`.
    F32,
    /// `"F64"`.
    F64,
    /// `"I64"`.
    I64,
    /// `"U64"`.
    U64,
}

impl Dtype {
    /// Every dtype, smallest element first.
    pub const ALL: [Dtype; 15] = [
        Dtype::Bool,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8E5M2,
        Dtype::F8E4M3,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::Bf16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
    ];

    /// The size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E5M2 | Dtype::F8E4M3 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }

    /// The name the format uses in headers: `"F32"`, `"BF16"`, `"F8_E4M3"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::Bf16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }

    /// The dtype the format calls `name`, if any.
    pub fn from_name(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|dtype| dtype.name() == name)
    }
}

impl fmt::Display for Dtype {
    /// Writes the format's name, e.g. `BF16`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one tensor lies in a [`SafeTensors`] file and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The element type.
    pub dtype: Dtype,
    /// The dimensions, outermost first; `[]` is a scalar holding one element.
    pub shape: Vec<usize>,
    /// The bytes of the elements within the data buffer ([`SafeTensors::data`]); its length
    /// is the element count times the dtype size.
    pub range: Range<usize>,
}

/// The bytes of a file: mapped from disk or owned.
enum Backing {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(map) => map,
            Backing::Owned(bytes) => bytes,
        }
    }
}

/// The F32 elements of one tensor, used in place in the file's bytes.
struct InPlaceF32 {
    backing: Arc<Backing>,
    /// The tensor's bytes within `backing`: in bounds and 4-byte aligned in memory, checked by
    /// [`SafeTensors::tensor_f32`] before building this.
    range: Range<usize>,
}

impl ExternalData for InPlaceF32 {
    fn as_f32(&self) -> &[f32] {
        self.backing
            .bytes()
            .get(self.range.clone())
            .and_then(|bytes| bytemuck::try_cast_slice(bytes).ok())
            .unwrap_or_default()
    }
}

/// A validated safetensors file: the tensor index and metadata of its header over the file's
/// bytes, which stay mapped (or owned) as long as this or a tensor read from it lives.
pub struct SafeTensors {
    file: String,
    backing: Arc<Backing>,
    data_start: usize,
    /// Sorted by name, names unique.
    tensors: Vec<(String, TensorInfo)>,
    metadata: Vec<(String, String)>,
}

impl fmt::Debug for SafeTensors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafeTensors")
            .field("file", &self.file)
            .field("tensors", &self.tensors)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl SafeTensors {
    /// Memory-maps the file at `path` and validates its header.
    ///
    /// Like every memory map, the file must not be changed or truncated while this (or a
    /// tensor read from it) lives: changes would show through F32 tensors used in place.
    /// Errors are [`Error::Io`] when the file cannot be opened or mapped, [`Error::Format`]
    /// when its contents are not a valid safetensors file.
    pub fn open(path: &Path) -> Result<SafeTensors> {
        let file = path.display().to_string();
        let io = |what: &str, e: std::io::Error| Error::Io {
            file: file.clone(),
            detail: format!("cannot {what}: {e}"),
        };
        let handle = File::open(path).map_err(|e| io("open", e))?;
        // SAFETY: the map is read-only, and reads stay within its length (validated below).
        // The remaining hazard, another process changing the file while it is mapped, is the
        // caller's to rule out, as documented above.
        let map = unsafe { Mmap::map(&handle) }.map_err(|e| io("map", e))?;
        SafeTensors::parse(file, Backing::Mapped(map))
    }

    /// Validates `bytes` as a safetensors file; `name_for_errors` stands for the file in
    /// messages. The same checks as [`SafeTensors::open`], over an owned buffer.
    pub fn from_bytes(name_for_errors: &str, bytes: Vec<u8>) -> Result<SafeTensors> {
        SafeTensors::parse(name_for_errors.to_string(), Backing::Owned(bytes))
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.tensors.iter().map(|(name, _)| name.as_str())
    }

    /// Where tensor `name` lies and what it holds, if the file has it.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        let index = self
            .tensors
            .binary_search_by(|(other, _)| other.as_str().cmp(name))
            .ok()?;
        self.tensors.get(index).map(|(_, info)| info)
    }

    /// The `"__metadata__"` entries in header order (empty when the header has none).
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// The data buffer, which [`TensorInfo::range`] indexes.
    pub fn data(&self) -> &[u8] {
        self.backing
            .bytes()
            .get(self.data_start..)
            .unwrap_or_default()
    }

    /// Tensor `name` as f32 values of the stored shape.
    ///
    /// F32 data that starts 4-byte aligned in memory is used in place, without a copy (a
    /// mapped file is page-aligned, so that is when its offset in the file is a multiple of 4;
    /// files written by [`write()`] and by the Python library always are); misaligned F32 data is
    /// copied. F16, BF16 and F64 data is converted into a new buffer. Errors for a missing
    /// name, an integer or 8-bit float dtype, or a shape [`Shape::new`](crate::Shape::new)
    /// refuses (more than [`MAX_RANK`] dimensions, non-zero ones that overflow `usize`).
    pub fn tensor_f32(&self, name: &str) -> Result<Tensor> {
        let (info, bytes) = self.tensor_bytes(name)?;
        if info.shape.len() > MAX_RANK {
            return Err(self.format(format!(
                "tensor '{name}': shape {:?} has {} dimensions, more than the engine's {MAX_RANK}",
                info.shape,
                info.shape.len()
            )));
        }
        crate::Shape::new(&info.shape).map_err(|e| self.format(format!("tensor '{name}': {e}")))?;
        let values: Vec<f32> = match info.dtype {
            Dtype::F32 => {
                // The file is little-endian, so only a little-endian target reads it in place.
                if cfg!(target_endian = "little")
                    && bytemuck::try_cast_slice::<u8, f32>(bytes).is_ok()
                {
                    let start = self.data_start + info.range.start;
                    let in_place = InPlaceF32 {
                        backing: Arc::clone(&self.backing),
                        range: start..start + bytes.len(),
                    };
                    return Tensor::from_external(&info.shape, Arc::new(in_place));
                }
                elements(bytes).map(f32::from_le_bytes).collect()
            }
            Dtype::F16 => elements(bytes)
                .map(|b| f16_to_f32(u16::from_le_bytes(b)))
                .collect(),
            Dtype::Bf16 => elements(bytes)
                .map(|b| bf16_to_f32(u16::from_le_bytes(b)))
                .collect(),
            Dtype::F64 => elements(bytes)
                .map(|b| f64::from_le_bytes(b) as f32)
                .collect(),
            other => {
                return Err(self.format(format!(
                    "tensor '{name}' holds {other} values; tensor_f32 reads F32, F16, BF16 and F64"
                )))
            }
        };
        Tensor::from_vec(&info.shape, values)
    }

    /// Tensor `name` as its shape and i64 values (copied), for token ids, masks and labels.
    ///
    /// Reads I64, I32, I16, I8, U32, U16, U8 and BOOL (as 0 and 1) data; errors for a missing
    /// name or another dtype.
    pub fn tensor_i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let (info, bytes) = self.tensor_bytes(name)?;
        let values = match info.dtype {
            Dtype::I64 => elements(bytes).map(i64::from_le_bytes).collect(),
            Dtype::I32 => elements(bytes)
                .map(|b| i64::from(i32::from_le_bytes(b)))
                .collect(),
            Dtype::U32 => elements(bytes)
                .map(|b| i64::from(u32::from_le_bytes(b)))
                .collect(),
            Dtype::I16 => elements(bytes)
                .map(|b| i64::from(i16::from_le_bytes(b)))
                .collect(),
            Dtype::U16 => elements(bytes)
                .map(|b| i64::from(u16::from_le_bytes(b)))
                .collect(),
            Dtype::I8 => elements(bytes)
                .map(|b| i64::from(i8::from_le_bytes(b)))
                .collect(),
            Dtype::U8 => bytes.iter().map(|&b| i64::from(b)).collect(),
            Dtype::Bool => bytes.iter().map(|&b| i64::from(b != 0)).collect(),
            other => {
                return Err(self.format(format!(
                    "tensor '{name}' holds {other} values; tensor_i64 reads I64, I32, U32, I16, U16, I8, U8 and BOOL"
                )))
            }
        };
        Ok((info.shape.clone(), values))
    }

    fn format(&self, detail: String) -> Error {
        Error::Format {
            file: self.file.clone(),
            detail,
        }
    }

    /// The info and bytes of tensor `name`, or an error listing the names most like it.
    fn tensor_bytes(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        let info = self.info(name).ok_or_else(|| self.missing(name))?;
        let bytes = self.data().get(info.range.clone()).ok_or_else(|| {
            self.format(format!(
                "tensor '{name}': bytes {:?} lie outside the data",
                info.range
            ))
        })?;
        Ok((info, bytes))
    }

    /// The error for a missing tensor, listing a few names, those sharing the most trailing
    /// dot-separated parts with `name` first (so a dropped or added `bert.` prefix shows).
    fn missing(&self, name: &str) -> Error {
        let shared_suffix = |other: &str| {
            other
                .rsplit('.')
                .zip(name.rsplit('.'))
                .take_while(|(a, b)| a == b)
                .count()
        };
        let mut names: Vec<&str> = self.names().collect();
        names.sort_by_key(|other| std::cmp::Reverse(shared_suffix(other)));
        let listed = if names.is_empty() {
            "it has no tensors".to_string()
        } else {
            let shown: Vec<String> = names
                .iter()
                .take(NAMES_SHOWN)
                .map(|other| format!("'{other}'"))
                .collect();
            let more = if names.len() > NAMES_SHOWN {
                format!(", ... {} in all", names.len())
            } else {
                String::new()
            };
            format!("it has {}{more}", shown.join(", "))
        };
        self.format(format!("no tensor '{name}' ({listed})"))
    }

    /// Validates the layout and header of `backing`.
    fn parse(file: String, backing: Backing) -> Result<SafeTensors> {
        let (data_start, (tensors, metadata)) =
            parse_header(backing.bytes()).map_err(|detail| Error::Format {
                file: file.clone(),
                detail,
            })?;
        Ok(SafeTensors {
            file,
            backing: Arc::new(backing),
            data_start,
            tensors,
            metadata,
        })
    }
}

/// The tensors (sorted by name) and metadata of a header.
type Header = (Vec<(String, TensorInfo)>, Vec<(String, String)>);

/// Checks the header of the file `bytes`: returns where the data buffer starts, the tensors
/// and the metadata, or what is wrong.
fn parse_header(bytes: &[u8]) -> std::result::Result<(usize, Header), String> {
    let length = bytes.first_chunk::<8>().ok_or_else(|| {
        format!(
            "file is {} bytes, shorter than the 8-byte header length",
            bytes.len()
        )
    })?;
    let header_len = u64::from_le_bytes(*length);
    let data_start = usize::try_from(header_len)
        .ok()
        .filter(|&n| n <= MAX_HEADER_BYTES)
        .map(|n| n + 8)
        .ok_or_else(|| {
            format!("header length {header_len} is over the limit of {MAX_HEADER_BYTES} bytes")
        })?;
    let (Some(header), Some(data)) = (bytes.get(8..data_start), bytes.get(data_start..)) else {
        return Err(format!(
            "header length {header_len} runs past the end of the file ({} bytes)",
            bytes.len()
        ));
    };
    let text = std::str::from_utf8(header).map_err(|e| {
        format!(
            "header is not UTF-8 (invalid byte at header offset {})",
            e.valid_up_to()
        )
    })?;
    let json = json::parse_with_array_limit(text, MAX_HEADER_ARRAY)
        .map_err(|e| format!("header is not valid JSON: {e}"))?;
    Ok((data_start, header_entries(&json, data.len())?))
}

/// The tensors and metadata of a parsed header, checked against a data buffer of `data_len`
/// bytes.
fn header_entries(json: &Json, data_len: usize) -> std::result::Result<Header, String> {
    let members = json
        .as_object()
        .ok_or_else(|| format!("header is {}, not an object", json.type_name()))?;
    let mut tensors = Vec::with_capacity(members.len());
    let mut metadata = None;
    for (name, entry) in members {
        if name == "__metadata__" {
            if metadata.is_some() {
                return Err("\"__metadata__\" appears twice in the header".to_string());
            }
            metadata = Some(metadata_entries(entry)?);
        } else {
            tensors.push((name.clone(), tensor_info(name, entry, data_len)?));
        }
    }
    tensors.sort_by(|(a, _), (b, _)| a.cmp(b));
    for pair in tensors.windows(2) {
        if let [(a, _), (b, _)] = pair {
            if a == b {
                return Err(format!("tensor '{a}' appears twice in the header"));
            }
        }
    }
    check_overlaps(&tensors)?;
    Ok((tensors, metadata.unwrap_or_default()))
}

/// The string-to-string entries of `"__metadata__"`.
fn metadata_entries(entry: &Json) -> std::result::Result<Vec<(String, String)>, String> {
    let members = entry.as_object().ok_or_else(|| {
        format!(
            "\"__metadata__\" is {}, not an object of strings",
            entry.type_name()
        )
    })?;
    members
        .iter()
        .map(|(key, value)| match value.as_str() {
            Some(text) => Ok((key.clone(), text.to_string())),
            None => Err(format!(
                "\"__metadata__\" key '{key}' holds {}, not a string",
                value.type_name()
            )),
        })
        .collect()
}

/// The checked header entry of tensor `name`.
fn tensor_info(
    name: &str,
    entry: &Json,
    data_len: usize,
) -> std::result::Result<TensorInfo, String> {
    if entry.as_object().is_none() {
        return Err(format!(
            "tensor '{name}': entry is {}, not an object",
            entry.type_name()
        ));
    }
    let field = |key: &str| {
        entry
            .get(key)
            .ok_or_else(|| format!("tensor '{name}': no \"{key}\""))
    };
    let dtype_json = field("dtype")?;
    let dtype_name = dtype_json.as_str().ok_or_else(|| {
        format!(
            "tensor '{name}': \"dtype\" is {}, not a string",
            dtype_json.type_name()
        )
    })?;
    let dtype = Dtype::from_name(dtype_name)
        .ok_or_else(|| format!("tensor '{name}': unknown dtype {dtype_json}"))?;
    let shape = integers(name, "shape", field("shape")?)?;
    let offsets = integers(name, "data_offsets", field("data_offsets")?)?;
    let &[begin, end] = offsets.as_slice() else {
        return Err(format!(
            "tensor '{name}': \"data_offsets\" holds {} numbers, not 2",
            offsets.len()
        ));
    };
    if begin > end {
        return Err(format!(
            "tensor '{name}': data_offsets [{begin}, {end}] begin after they end"
        ));
    }
    if end > data_len {
        return Err(format!(
            "tensor '{name}': data_offsets [{begin}, {end}] run past the end of the data ({data_len} bytes)"
        ));
    }
    let needed = byte_size(&shape, dtype).ok_or_else(|| {
        format!("tensor '{name}': shape {shape:?} of {dtype} has more bytes than fit in usize")
    })?;
    if needed != end - begin {
        return Err(format!(
            "tensor '{name}': shape {shape:?} of {dtype} needs {needed} bytes, data_offsets give {}",
            end - begin
        ));
    }
    Ok(TensorInfo {
        dtype,
        shape,
        range: begin..end,
    })
}

/// The non-negative integers of the array `value`, field `key` of tensor `name`.
fn integers(name: &str, key: &str, value: &Json) -> std::result::Result<Vec<usize>, String> {
    let items = value.as_array().ok_or_else(|| {
        format!(
            "tensor '{name}': \"{key}\" is {}, not an array",
            value.type_name()
        )
    })?;
    items
        .iter()
        .map(|item| {
            item.as_usize().ok_or_else(|| match item {
                Json::Number(_) => {
                    format!("tensor '{name}': \"{key}\" holds {item}, not a non-negative integer")
                }
                _ => format!(
                    "tensor '{name}': \"{key}\" holds {}, not a non-negative integer",
                    item.type_name()
                ),
            })
        })
        .collect()
}

/// The bytes a tensor of `shape` and `dtype` takes, or `None` when that overflows `usize`.
fn byte_size(shape: &[usize], dtype: Dtype) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))?
        .checked_mul(dtype.size())
}

/// Errors when two tensors' (non-empty) byte ranges overlap.
fn check_overlaps(tensors: &[(String, TensorInfo)]) -> std::result::Result<(), String> {
    let mut ranges: Vec<(&str, &Range<usize>)> = tensors
        .iter()
        .filter(|(_, info)| !info.range.is_empty())
        .map(|(name, info)| (name.as_str(), &info.range))
        .collect();
    ranges.sort_by_key(|(_, range)| (range.start, range.end));
    // Sorted by start, the ranges are disjoint exactly when each ends before the next starts.
    for pair in ranges.windows(2) {
        if let [(a, range_a), (b, range_b)] = pair {
            if range_b.start < range_a.end {
                return Err(format!(
                    "tensors '{a}' (bytes {range_a:?}) and '{b}' (bytes {range_b:?}) overlap"
                ));
            }
        }
    }
    Ok(())
}

/// The `N`-byte elements of `bytes`, to decode with `from_le_bytes` (validation makes the
/// length a multiple of `N`).
fn elements<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes
        .chunks_exact(N)
        .filter_map(|chunk| <[u8; N]>::try_from(chunk).ok())
}

/// Typed values for [`write_tensors`], stored little-endian.
#[derive(Clone, Copy, Debug)]
pub enum TensorData<'a> {
    /// Stored as `F32`.
    F32(&'a [f32]),
    /// Stored as `I64`.
    I64(&'a [i64]),
}

impl<'a> TensorData<'a> {
    /// The dtype these values are stored as.
    pub fn dtype(&self) -> Dtype {
        match self {
            TensorData::F32(_) => Dtype::F32,
            TensorData::I64(_) => Dtype::I64,
        }
    }

    /// The little-endian bytes of the values (borrowed on a little-endian target).
    fn le_bytes(&self) -> Cow<'a, [u8]> {
        match *self {
            TensorData::F32(values) if cfg!(target_endian = "little") => {
                Cow::Borrowed(bytemuck::cast_slice(values))
            }
            TensorData::I64(values) if cfg!(target_endian = "little") => {
                Cow::Borrowed(bytemuck::cast_slice(values))
            }
            TensorData::F32(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            TensorData::I64(values) => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// One tensor for [`write()`]: name, dtype, shape and little-endian element bytes.
pub type RawTensor<'a> = (&'a str, Dtype, &'a [usize], &'a [u8]);

/// Writes a safetensors file at `path` holding `tensors` (name, dtype, shape, little-endian
/// bytes) and, when not empty, `metadata` as `"__metadata__"`.
///
/// Lays the file out as the Python library does: data ordered by dtype size (largest first),
/// then by name, so that every tensor starts aligned to its element size; the header padded
/// with spaces so that the data starts 8-byte aligned. Errors with [`Error::Format`] when a
/// tensor's byte count differs from its shape's, or a name repeats, and with [`Error::Io`] when
/// the file cannot be created or written.
pub fn write(path: &Path, tensors: &[RawTensor<'_>], metadata: &[(&str, &str)]) -> Result<()> {
    let file = path.display().to_string();
    let (header, order) = header_bytes(tensors, metadata).map_err(|detail| Error::Format {
        file: file.clone(),
        detail,
    })?;
    let io = |e: std::io::Error| Error::Io {
        file: file.clone(),
        detail: format!("cannot write: {e}"),
    };
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    out.write_all(&header).map_err(io)?;
    for (_, _, _, bytes) in order {
        out.write_all(bytes).map_err(io)?;
    }
    out.into_inner().map_err(|e| io(e.into_error()))?;
    Ok(())
}

/// [`write()`] for typed values: each tensor is a name, a shape and its values.
pub fn write_tensors(
    path: &Path,
    tensors: &[(&str, &[usize], TensorData<'_>)],
    metadata: &[(&str, &str)],
) -> Result<()> {
    let bytes: Vec<Cow<'_, [u8]>> = tensors.iter().map(|(_, _, data)| data.le_bytes()).collect();
    let raw: Vec<RawTensor<'_>> = tensors
        .iter()
        .zip(&bytes)
        .map(|(&(name, shape, data), bytes)| (name, data.dtype(), shape, bytes.as_ref()))
        .collect();
    write(path, &raw, metadata)
}

/// The header (length, JSON, padding) for `tensors` and the order their data follows in.
fn header_bytes<'t, 'a>(
    tensors: &'t [RawTensor<'a>],
    metadata: &[(&str, &str)],
) -> std::result::Result<(Vec<u8>, Vec<&'t RawTensor<'a>>), String> {
    let mut names: Vec<&str> = tensors.iter().map(|(name, ..)| *name).collect();
    names.sort_unstable();
    for pair in names.windows(2) {
        if let [a, b] = pair {
            if a == b {
                return Err(format!("tensor '{a}' is given twice"));
            }
        }
    }
    if names.contains(&"__metadata__") {
        return Err("a tensor cannot be named '__metadata__'".to_string());
    }
    let mut keys: Vec<&str> = metadata.iter().map(|(key, _)| *key).collect();
    keys.sort_unstable();
    for pair in keys.windows(2) {
        if let [a, b] = pair {
            if a == b {
                return Err(format!("metadata key '{a}' is given twice"));
            }
        }
    }

    let mut order: Vec<&RawTensor<'a>> = tensors.iter().collect();
    order.sort_by(|(a, dtype_a, ..), (b, dtype_b, ..)| {
        dtype_b.size().cmp(&dtype_a.size()).then(a.cmp(b))
    });
    let mut members = Vec::with_capacity(order.len() + 1);
    if !metadata.is_empty() {
        let entries = metadata
            .iter()
            .map(|(key, value)| (key.to_string(), Json::String(value.to_string())))
            .collect();
        members.push(("__metadata__".to_string(), Json::Object(entries)));
    }
    let exact = |name: &str, n: usize| match u64::try_from(n) {
        Ok(v) if v <= MAX_EXACT_INTEGER => Ok(Json::Number(v as f64)),
        _ => Err(format!(
            "tensor '{name}': {n} is too large to store exactly in a JSON header"
        )),
    };
    let mut offset = 0usize;
    for &&(name, dtype, shape, bytes) in &order {
        match byte_size(shape, dtype) {
            Some(needed) if needed == bytes.len() => {}
            Some(needed) => {
                return Err(format!(
                    "tensor '{name}': shape {shape:?} of {dtype} needs {needed} bytes, got {}",
                    bytes.len()
                ))
            }
            None => {
                return Err(format!(
                    "tensor '{name}': shape {shape:?} of {dtype} has more bytes than fit in usize"
                ))
            }
        }
        let end = offset
            .checked_add(bytes.len())
            .ok_or_else(|| format!("tensor '{name}': the data grows past usize"))?;
        let dims = shape
            .iter()
            .map(|&d| exact(name, d))
            .collect::<std::result::Result<_, _>>()?;
        let entry = vec![
            ("dtype".to_string(), Json::String(dtype.name().to_string())),
            ("shape".to_string(), Json::Array(dims)),
            (
                "data_offsets".to_string(),
                Json::Array(vec![exact(name, offset)?, exact(name, end)?]),
            ),
        ];
        members.push((name.to_string(), Json::Object(entry)));
        offset = end;
    }
    let mut text = Json::Object(members).to_string();
    let padding = (text.len() + 8).next_multiple_of(8) - 8 - text.len();
    text.push_str(&" ".repeat(padding));
    let mut header = Vec::with_capacity(8 + text.len());
    header.extend_from_slice(&(text.len() as u64).to_le_bytes());
    header.extend_from_slice(text.as_bytes());
    Ok((header, order))
}
