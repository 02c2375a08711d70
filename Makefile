# Thin front end: every target builds the lab (a Rust program) and runs it.
# The lab installs what is missing (mmdebstrap on the host, everything else
# in its Debian trixie build root under build/root), so these work on a
# fresh Debian machine, as root.

CARGO ?= cargo
export CARGO_TARGET_DIR := $(CURDIR)/build/target
LAB := $(CARGO_TARGET_DIR)/release/lab

# mainline (the newest linux-source-N.M of Debian trixie) or 6.12.
BASE ?= mainline
# Empty: the lab's default (rust, or c where the base has no rust yet).
VARIANT ?=

.PHONY: run test test-tree-mainline test-tree-6.12 test-mainline test-mainline-tip test-6.12 check bench send tree export apply setup lab lab-test clean-build

# series -> kernel -> boot -> mm selftests -> report, for $(VARIANT) of $(BASE).
run: lab
	$(LAB) run --base $(BASE) $(foreach v,$(VARIANT),--variant $(v))

# Everything CI checks: the lab's own tests; that the 6.12 backport's Rust
# is mainline's series but for what config/6.12/rust-differences explains;
# then two streams side by side (make -j2), so that each fills the cores
# the other leaves idle (checkpatch, get_maintainer, rustfmt, rustdoc,
# links, single-threaded tests in a guest). The first is mainline's
# per-patch checks (the walk), mail round trip and guests. The second is
# 6.12's mail round trip (its series applies and goes through b4 intact),
# then what mainline builds only at its tip: its debug kernel and the
# tip's checks (the arm64 kernel, other architectures' fault.o, htmldocs).
# Those build in the tip checkout (build/mainline/tip), not in the work
# tree the walk checks each patch out in, so they need not wait for the
# walk; the first stream's guests boot them. Left to `make test-6.12` and
# `lab test`, which a cold run could not fit in CI's time beside the rest
# (mainline's walk rebuilds most of the kernel at patches 1, 10 and 11,
# twice each; a cold make test with 6.12's rust kernel and guest took 92
# minutes on a slow machine of CI's kind): 6.12's kernels, its per-patch
# walk and its guests, and mainline's arm64-c guest (the same for
# arm64-rust).
TEST_GUESTS_mainline := c rust arm64-rust
test: lab
	$(LAB) setup
	$(MAKE) -j2 test-tree-mainline test-tree-6.12
	$(MAKE) lab-test
	$(LAB) backport
	$(MAKE) -j2 test-mainline test-mainline-tip

# The two kernel trees are unpacked and committed side by side: each is
# one core's work (xz, git's hashing).
test-tree-mainline test-tree-6.12: test-tree-%: lab
	$(LAB) tree --base $* > /dev/null

# make test's first stream. Its debug and arm64 guests boot kernels the
# second stream builds: the lab locks each kernel's build folder, so a run
# waits for such a build if it is under way, or builds the kernel itself
# if it has not begun (the second stream then finds it built). `lab check`
# holds the work tree while it walks the patches, so no other lab process
# builds from a patch in the middle of the series.
test-mainline: lab
	$(LAB) check --base mainline --patches-only
	$(LAB) send --base mainline --loopback
	$(LAB) run --base mainline $(foreach v,$(filter-out arm64-%,$(TEST_GUESTS_mainline)),--variant $(v))
	$(LAB) run --base mainline --variant debug
	$(LAB) run --base mainline $(foreach v,$(filter arm64-%,$(TEST_GUESTS_mainline)),--variant $(v))

# make test's second stream: 6.12's mail round trip, then mainline's debug
# kernel, its boot as a LAVA job through lava-run (LAVA's results must be
# the lab's own), and the checks of its tip, in the tip checkout beside the
# walk.
test-mainline-tip: lab
	$(LAB) send --base 6.12 --loopback
	$(LAB) build --base mainline debug
	$(LAB) lava --base mainline debug --run
	$(LAB) check --base mainline --series-only

# All of 6.12: every patch checked, the mail round trip, every 6.12 guest.
test-6.12: lab
	$(LAB) setup
	$(LAB) backport
	$(LAB) check --base 6.12
	$(LAB) send --base 6.12 --loopback
	$(LAB) test --base 6.12

# Every per-patch check (checkpatch, get_maintainer, rustfmt, builds with the
# option off and on with clippy, rustdoc) and the tip on other architectures.
check: lab
	$(LAB) check --base $(BASE)

# The cost per page fault, c against rust, side by side (table, JSON, SVG).
bench: lab
	$(LAB) bench --base $(BASE)

# The series as mail under build/$(BASE)/send/mail, prepared with b4;
# SEND=1 sends it with b4 and your git configuration (b4 asks first).
send: lab
	$(LAB) send --base $(BASE) $(if $(filter 1,$(SEND)),--really)

# The build root (made or refreshed when its package list changed).
setup: lab
	$(LAB) setup

lab-test:
	$(CARGO) test --release --locked --workspace

# The kernel work tree of $(BASE) with its series applied; prints its path.
tree: lab
	$(LAB) tree --base $(BASE)

# Write the tree's commits after `base` back to patches/$(BASE)/.
export: lab
	$(LAB) export --base $(BASE)

apply: lab
	$(LAB) apply --base $(BASE)

lab:
	$(CARGO) build --release --locked --workspace

clean-build:
	rm -rf build/mainline/kernel build/6.12/kernel build/*/initramfs build/*/selftests build/*/headers build/runs
