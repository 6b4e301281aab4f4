//! Reads a PyTorch file in the legacy serialization (PyTorch < 1.6, not a zip archive), which is
//! what fcd_torch's `ChemNet_v0.13_pretrained.pt` is. Such a file is five pickles in a row (magic
//! number, protocol version, system information, the saved object, the list of storage keys),
//! then every storage as a little-endian u64 element count followed by its raw bytes. The pickles
//! are parsed with candle's unpickler, which also decodes the tensor references in them.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, Stack};
use candle_core::DType;

use crate::Error;

/// `pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)`: the magic number legacy files start with.
const MAGIC_PICKLE: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";

/// The saved object of a legacy PyTorch file and the bytes of its storages.
pub struct LegacyTorchFile {
    path: PathBuf,
    /// The unpickled object (tensors appear as `torch._utils._rebuild_tensor_v2` reductions).
    pub object: Object,
    storages: HashMap<String, Vec<u8>>,
}

fn bad(path: &Path, why: impl Into<String>) -> Error {
    Error::Weights {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

impl LegacyTorchFile {
    /// Reads the whole file.
    pub fn read(path: &Path) -> Result<LegacyTorchFile, Error> {
        let file = std::fs::File::open(path).map_err(|e| bad(path, e.to_string()))?;
        let mut r = BufReader::new(file);
        let mut magic = [0u8; MAGIC_PICKLE.len()];
        r.read_exact(&mut magic)
            .map_err(|e| bad(path, format!("too short for a PyTorch file ({e})")))?;
        if magic != MAGIC_PICKLE {
            return Err(bad(
                path,
                "not a PyTorch file in the legacy format (no magic number)",
            ));
        }
        let mut next_pickle = |what: &str| -> Result<Object, Error> {
            let mut stack = Stack::empty();
            stack
                .read_loop(&mut r)
                .and_then(|()| stack.finalize())
                .map_err(|e| bad(path, format!("unreadable {what}: {e}")))
        };
        let _protocol = next_pickle("protocol version")?;
        let _sys_info = next_pickle("system information")?;
        let object = next_pickle("saved object")?;
        let keys = next_pickle("storage keys")?;
        let keys: Vec<String> = match keys {
            Object::List(keys) => keys
                .into_iter()
                .map(|k| {
                    k.unicode()
                        .map_err(|_| bad(path, "a storage key is not a string"))
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(bad(path, "the storage keys are not a list")),
        };
        let mut storages = HashMap::new();
        for key in keys {
            let mut count = [0u8; 8];
            r.read_exact(&mut count)
                .map_err(|_| bad(path, format!("truncated before storage {key}")))?;
            // Every storage fcd_torch saves is float32; the element size is checked per tensor.
            let bytes = u64::from_le_bytes(count) as usize * 4;
            let mut data = vec![0u8; bytes];
            r.read_exact(&mut data)
                .map_err(|_| bad(path, format!("truncated inside storage {key}")))?;
            storages.insert(key, data);
        }
        Ok(LegacyTorchFile {
            path: path.to_path_buf(),
            object,
            storages,
        })
    }

    /// The float32 values and shape of a tensor reference found in the object.
    pub fn tensor(&self, name: &str, reference: &Object) -> Result<(Vec<f32>, Vec<usize>), Error> {
        let info = reference
            .clone()
            .into_tensor_info(Object::Unicode(name.to_string()), Path::new(""))
            .map_err(|e| bad(&self.path, format!("tensor {name}: {e}")))?
            .ok_or_else(|| bad(&self.path, format!("{name} is not a tensor")))?;
        if info.dtype != DType::F32 {
            return Err(bad(
                &self.path,
                format!("tensor {name} is {:?}, not float32", info.dtype),
            ));
        }
        if !info.layout.is_contiguous() {
            return Err(bad(&self.path, format!("tensor {name} is not contiguous")));
        }
        let key = info.path.trim_start_matches('/');
        let storage = self
            .storages
            .get(key)
            .ok_or_else(|| bad(&self.path, format!("tensor {name}: no storage {key}")))?;
        let start = info.layout.start_offset();
        let end = start + info.layout.shape().elem_count() * 4;
        let bytes = storage
            .get(start..end)
            .ok_or_else(|| bad(&self.path, format!("tensor {name} runs past its storage")))?;
        let values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((values, info.layout.shape().dims().to_vec()))
    }
}
