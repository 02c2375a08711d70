//! What the lab's tests share: the checkout's build folder, and for tests
//! that run the build root's tools, that root and a scratch folder it sees
//! (the root shares the checkout, not the host's /tmp).

use std::fs;
use std::path::Path;
use tempfile::TempDir;

use crate::layout::Layout;
use crate::root::Root;

/// The layout of this checkout.
pub fn layout() -> Layout {
    Layout::new(Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("lab/ has a parent"))
}

/// This checkout's build root, its layout, and a fresh scratch folder
/// under build/tmp.
pub struct InRoot {
    pub layout: Layout,
    pub root: Root,
    pub scratch: TempDir,
}

/// The build root, which must hold `needs` (a path in it, `usr/bin` for
/// any root): `lab setup` makes it, and `make test` runs that first.
pub fn in_root(needs: &str) -> InRoot {
    let layout = layout();
    assert!(layout.root().join(needs).exists(), "no {needs} in the build root: run `lab setup` (make test does) first");
    let tmp = layout.build.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let scratch = tempfile::tempdir_in(&tmp).unwrap();
    let root = Root::new(layout.root(), vec![layout.repo.clone()]);
    InRoot { layout, root, scratch }
}
