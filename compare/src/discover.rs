//! Finds the models: every package under `examples-*/` with a binary, and
//! the `sequential` reference, straight from `cargo metadata`. Crates added
//! later appear without any edit here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, Package};

/// One model the comparison runs.
#[derive(Clone, Debug)]
pub struct Example {
    /// The package name (`concurrency-tokio`), or `sequential`.
    pub model: String,
    /// The package that builds it.
    pub package: String,
    /// The binary's name.
    pub bin: String,
    /// `reference`, `concurrency`, `parallelism`, `blocking`, …
    pub group: String,
    /// The crates it runs on, with their resolved versions (`tokio 1.54.1`):
    /// its normal dependencies other than `restaurant`.
    pub crates: Vec<String>,
    /// Programs it needs beyond cargo, from its manifest's
    /// `[package.metadata.restaurant] requires = ["redis-server"]`.
    pub requires: Vec<String>,
    /// Why it is kept though its runtime is discontinued, from
    /// `[package.metadata.restaurant] discontinued = "…"`: tables mark it.
    pub discontinued: Option<String>,
}

impl Example {
    /// Why it cannot run here, if it cannot: a program it requires is
    /// not on the `PATH`.
    pub fn missing(&self) -> Option<String> {
        let absent: Vec<&str> = self
            .requires
            .iter()
            .filter(|program| !on_path(program))
            .map(String::as_str)
            .collect();
        (!absent.is_empty()).then(|| {
            format!("needs {} on the PATH, not found here", absent.join(", "))
        })
    }
}

/// Whether an executable named `program` is in a directory of the `PATH`.
fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let file = dir.join(program);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.metadata().is_ok_and(|m| {
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        }
        #[cfg(not(unix))]
        {
            file.with_extension(std::env::consts::EXE_EXTENSION)
                .is_file()
                || file.is_file()
        }
    })
}

/// The `[package.metadata.restaurant]` table of a package's manifest.
fn restaurant_metadata(package: &Package) -> Option<&serde_json::Value> {
    package.metadata.get("restaurant")
}

/// The workspace as the comparison needs it.
#[derive(Debug)]
pub struct Workspace {
    /// Where `Cargo.toml` is.
    pub root: PathBuf,
    /// Where cargo puts its builds (respects `CARGO_TARGET_DIR`).
    pub target_dir: PathBuf,
    /// Every model, the reference first, then by group and name.
    pub examples: Vec<Example>,
    /// The null restaurant, whose nights are the yardstick's floor.
    pub floor: Option<Example>,
}

impl Workspace {
    /// Where the release build of `example` lands.
    pub fn binary(&self, example: &Example) -> PathBuf {
        let name = format!("{}{}", example.bin, std::env::consts::EXE_SUFFIX);
        self.target_dir.join("release").join(name)
    }
}

/// Reads the workspace at `manifest` (its root `Cargo.toml`).
pub fn workspace(manifest: &Path) -> Result<Workspace> {
    let metadata = MetadataCommand::new()
        .manifest_path(manifest)
        .exec()
        .context("cargo metadata failed")?;
    let root = metadata.workspace_root.clone().into_std_path_buf();
    let mut examples = Vec::new();
    let mut floor = None;
    for package in metadata.workspace_packages() {
        let dir = package
            .manifest_path
            .parent()
            .map(|d| d.as_std_path().to_path_buf())
            .unwrap_or_default();
        let Ok(relative) = dir.strip_prefix(&root) else {
            continue;
        };
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default();
        let bins: Vec<&str> = package
            .targets
            .iter()
            .filter(|t| t.is_bin())
            .map(|t| t.name.as_str())
            .collect();
        if let Some(group) = first.strip_prefix("examples-") {
            let Some(bin) = bins.iter().find(|b| **b == package.name.as_str())
            else {
                continue; // a library without its binary is not a model
            };
            examples.push(Example {
                model: package.name.to_string(),
                package: package.name.to_string(),
                bin: (*bin).to_owned(),
                group: group.to_owned(),
                crates: crates_of(&metadata, package),
                requires: restaurant_metadata(package)
                    .and_then(|m| m.get("requires"))
                    .and_then(|r| r.as_array())
                    .map(|programs| {
                        programs
                            .iter()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                discontinued: restaurant_metadata(package)
                    .and_then(|m| m.get("discontinued"))
                    .and_then(|d| d.as_str().map(str::to_owned)),
            });
        } else if bins.contains(&"sequential") {
            if bins.contains(&"null-restaurant") {
                floor = Some(Example {
                    model: "null-restaurant".to_owned(),
                    package: package.name.to_string(),
                    bin: "null-restaurant".to_owned(),
                    group: "floor".to_owned(),
                    crates: crates_of(&metadata, package),
                    requires: Vec::new(),
                    discontinued: None,
                });
            }
            examples.push(Example {
                model: "sequential".to_owned(),
                package: package.name.to_string(),
                bin: "sequential".to_owned(),
                group: "reference".to_owned(),
                crates: vec!["std".to_owned()],
                requires: Vec::new(),
                discontinued: None,
            });
        }
    }
    if examples.is_empty() {
        bail!("no examples found under {}/examples-*", root.display());
    }
    let rank = |group: &str| match group {
        "reference" => 0,
        "concurrency" => 1,
        "parallelism" => 2,
        "blocking" => 3,
        _ => 4,
    };
    examples.sort_by(|a, b| {
        (rank(&a.group), &a.group, &a.model).cmp(&(
            rank(&b.group),
            &b.group,
            &b.model,
        ))
    });
    Ok(Workspace {
        root,
        target_dir: metadata.target_directory.into_std_path_buf(),
        examples,
        floor,
    })
}

/// The normal dependencies of `package` other than `restaurant`, with the
/// versions the lock file resolved them to.
fn crates_of(metadata: &Metadata, package: &Package) -> Vec<String> {
    let by_id: HashMap<_, _> =
        metadata.packages.iter().map(|p| (&p.id, p)).collect();
    let Some(node) = metadata
        .resolve
        .as_ref()
        .and_then(|r| r.nodes.iter().find(|n| n.id == package.id))
    else {
        return Vec::new();
    };
    let mut crates: Vec<String> = node
        .deps
        .iter()
        .filter(|dep| {
            dep.dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Normal)
        })
        .filter_map(|dep| by_id.get(&dep.pkg))
        .filter(|p| p.name.as_str() != "restaurant")
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    crates.sort();
    if crates.is_empty() {
        crates.push("std".to_owned());
    }
    crates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needing(programs: &[&str]) -> Example {
        Example {
            model: "m".to_owned(),
            package: "m".to_owned(),
            bin: "m".to_owned(),
            group: "parallelism".to_owned(),
            crates: Vec::new(),
            requires: programs.iter().map(|p| (*p).to_owned()).collect(),
            discontinued: None,
        }
    }

    #[test]
    fn a_model_is_skipped_only_for_a_program_missing_from_the_path() {
        assert_eq!(needing(&[]).missing(), None);
        // cargo is on the PATH wherever these tests run.
        assert_eq!(needing(&["cargo"]).missing(), None);
        let why = needing(&["cargo", "surely-no-such-program-here"])
            .missing()
            .expect("a missing program is named");
        assert!(why.contains("surely-no-such-program-here"), "{why}");
        assert!(!why.contains("cargo,"), "{why}");
    }

    #[test]
    fn the_workspace_declares_what_redis_streams_needs() {
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let workspace = workspace(&manifest).expect("cargo metadata works");
        let redis = workspace
            .examples
            .iter()
            .find(|e| e.model == "parallelism-redis-streams")
            .expect("the redis-streams model is found");
        assert_eq!(redis.requires, ["redis-server"]);
        let async_std = workspace
            .examples
            .iter()
            .find(|e| e.model == "concurrency-async-std")
            .expect("the async-std model is found");
        assert!(async_std.discontinued.is_some());
    }
}
