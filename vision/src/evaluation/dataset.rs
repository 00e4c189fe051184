//! Finds the labelled images of an evaluation folder. Two layouts are understood:
//! class folders (`root/<class>/*.jpg`) and MVTec AD (`root/test/<class>/*`, with
//! pixel masks in `root/ground_truth/<class>/<stem>_mask.png`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "gif"];
/// The good-part folder name in MVTec AD layouts.
pub const MVTEC_GOOD: &str = "good";

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} has no class sub-folders with images (expected <folder>/<class>/*.jpg or MVTec test/<class>/)"
    )]
    Empty(PathBuf),
    #[error(
        "--map names {}: no such folder in {} (its folders: {})",
        missing.join(", "), root.display(), folders.join(", ")
    )]
    NoSuchFolders {
        root: PathBuf,
        missing: Vec<String>,
        folders: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetLayout {
    ClassFolders,
    MvTec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub path: PathBuf,
    /// Ground-truth class: the folder name, after `--map` renaming.
    pub class: String,
    /// Pixel mask of the defect, where the dataset has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub root: PathBuf,
    pub layout: DatasetLayout,
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// Lists the images under `root`, renaming classes through `class_map` (folder -> label).
    pub fn discover(
        root: &Path,
        class_map: &BTreeMap<String, String>,
    ) -> Result<Self, DatasetError> {
        let test = root.join("test");
        let is_mvtec =
            test.is_dir() && (root.join("train").is_dir() || root.join("ground_truth").is_dir());
        let (layout, images_root) = if is_mvtec {
            (DatasetLayout::MvTec, test)
        } else {
            (DatasetLayout::ClassFolders, root.to_owned())
        };
        let class_dirs: Vec<PathBuf> = sorted_entries(&images_root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        let folders: Vec<String> = class_dirs.iter().map(|d| file_name(d)).collect();
        let missing: Vec<String> = class_map
            .keys()
            .filter(|name| !folders.contains(name))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(DatasetError::NoSuchFolders {
                root: images_root,
                missing,
                folders,
            });
        }
        let mut samples = Vec::new();
        for (class_dir, folder) in class_dirs.iter().zip(folders) {
            let class = class_map
                .get(&folder)
                .cloned()
                .unwrap_or_else(|| folder.clone());
            for path in sorted_entries(class_dir)?
                .into_iter()
                .filter(|p| is_image(p))
            {
                let mask = (layout == DatasetLayout::MvTec)
                    .then(|| mask_path(root, &folder, &path))
                    .flatten();
                samples.push(Sample {
                    path,
                    class: class.clone(),
                    mask,
                });
            }
        }
        if samples.is_empty() {
            return Err(DatasetError::Empty(root.to_owned()));
        }
        Ok(Self {
            root: root.to_owned(),
            layout,
            samples,
        })
    }

    /// Ground-truth classes, sorted.
    pub fn classes(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.samples.iter().map(|s| s.class.as_str()).collect();
        set.into_iter().map(String::from).collect()
    }
}

fn mask_path(root: &Path, folder: &str, image: &Path) -> Option<PathBuf> {
    let stem = image.file_stem()?.to_string_lossy();
    let mask = root
        .join("ground_truth")
        .join(folder)
        .join(format!("{stem}_mask.png"));
    mask.is_file().then_some(mask)
}

pub fn is_image(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    !hidden && path.is_file() && ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io = |source| DatasetError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, b"x").expect("write");
    }

    #[test]
    fn class_folders_with_renaming() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(&dir.path().join("ok_front/a.jpeg"));
        touch(&dir.path().join("def_front/b.JPG"));
        touch(&dir.path().join("def_front/notes.txt"));
        let map = BTreeMap::from([("ok_front".to_string(), "good".to_string())]);
        let ds = Dataset::discover(dir.path(), &map).expect("dataset");
        assert_eq!(ds.layout, DatasetLayout::ClassFolders);
        assert_eq!(ds.classes(), vec!["def_front", "good"]);
        assert_eq!(ds.samples.len(), 2);
    }

    #[test]
    fn mvtec_layout_finds_masks() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(&dir.path().join("train/good/000.png"));
        touch(&dir.path().join("test/good/000.png"));
        touch(&dir.path().join("test/crack/001.png"));
        touch(&dir.path().join("ground_truth/crack/001_mask.png"));
        let ds = Dataset::discover(dir.path(), &BTreeMap::new()).expect("dataset");
        assert_eq!(ds.layout, DatasetLayout::MvTec);
        assert_eq!(ds.samples.len(), 2);
        let crack = ds
            .samples
            .iter()
            .find(|s| s.class == "crack")
            .expect("crack sample");
        assert!(
            crack
                .mask
                .as_ref()
                .is_some_and(|m| m.ends_with("001_mask.png"))
        );
    }

    #[test]
    fn every_mapped_folder_that_is_missing_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(&dir.path().join("ok_front/a.jpeg"));
        let map = BTreeMap::from([
            ("ok_fornt".to_string(), "good".to_string()),
            ("def_fornt".to_string(), "defect".to_string()),
            ("ok_front".to_string(), "good".to_string()),
        ]);
        let err = Dataset::discover(dir.path(), &map).expect_err("typos");
        let text = err.to_string();
        assert!(
            text.contains("--map names def_fornt, ok_fornt: no such folder")
                && text.contains("its folders: ok_front"),
            "{text}"
        );
    }

    #[test]
    fn empty_folder_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Dataset::discover(dir.path(), &BTreeMap::new()).expect_err("empty");
        assert!(matches!(err, DatasetError::Empty(_)));
    }
}
