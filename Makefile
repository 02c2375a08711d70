# Thin front end: every target builds the lab (a Rust program) and runs it.
# The lab installs what is missing, so these work on a fresh Debian machine.

CARGO ?= cargo
export CARGO_TARGET_DIR := $(CURDIR)/build/target
LAB := $(CARGO_TARGET_DIR)/release/lab

VARIANT ?= rust

.PHONY: run test check bench send tree export apply lab lab-test clean-build

# series -> kernel -> boot -> mm selftests -> report, for $(VARIANT).
run: lab
	$(LAB) run $(foreach v,$(VARIANT),--variant $(v))

# Everything CI checks: the lab's own tests, the per-patch checks (whose last
# step leaves the test kernels built), then every kernel variant.
test: lab
	$(LAB) setup
	$(LAB) tree > /dev/null
	$(MAKE) lab-test
	$(LAB) check
	$(LAB) send --loopback
	$(LAB) test

# Every per-patch check (checkpatch, get_maintainer, rustfmt, builds with the
# option off and on with clippy, rustdoc) and the tip on arm64, powerpc, s390.
check: lab
	$(LAB) check

# The cost per page fault, c against rust, side by side (table, JSON, SVG).
bench: lab
	$(LAB) bench

# The series as mail under build/send/ (a dry run of git send-email);
# SEND=1 sends it with your git send-email configuration.
send: lab
	$(LAB) send $(if $(filter 1,$(SEND)),--really)

lab-test:
	$(CARGO) test --release --locked --workspace

# The kernel work tree with patches/ applied; prints its path.
tree: lab
	$(LAB) tree

# Write the tree's commits after `base` back to patches/.
export: lab
	$(LAB) export

apply: lab
	$(LAB) apply

lab:
	$(CARGO) build --release --locked --workspace

clean-build:
	rm -rf build/kernel build/initramfs build/selftests build/headers build/runs
