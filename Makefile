# Pampa: two commands.
#   make run    installs what is missing, builds, starts pampad with a demo VM
#   make test   installs what is missing, builds, runs the whole test suite
BUILD ?= build
GUEST ?= $(BUILD)/guest
JOBS ?= 2
PYTHON ?= /usr/bin/python3

.PHONY: all deps build web guest run test unit integration bench bench-web bench-backup bench-restore bench-store bench-pool bench-import bench-ha bench-density format clean

all: build

deps:
	@tools/install-deps

$(BUILD)/Makefile: CMakeLists.txt
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	@$(MAKE) --no-print-directory -C $(BUILD) -j$(JOBS)
	@$(MAKE) --no-print-directory web

# The web console (web/): built into $(BUILD)/web, beside pampad, which serves it.
WEB_SOURCES := $(shell find web/src web/scripts web/public -type f 2>/dev/null) \
  web/index.html web/package.json web/package-lock.json web/tsconfig.json web/vite.config.ts tests/e2e/package-lock.json
web: $(BUILD)/web/index.html
$(BUILD)/web/index.html: $(WEB_SOURCES) tools/build-web
	@tools/build-web $(BUILD)/web

guest: deps
	@tools/mkguest $(GUEST)

run: build guest
	@tools/run-demo $(BUILD) $(GUEST)

unit: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	@cd web && npx --no-install tsc --noEmit && npx --no-install vitest run --reporter=dot

integration: build guest
	@PAMPA_BUILD=$(abspath $(BUILD)) PAMPA_GUEST=$(abspath $(GUEST)) PAMPA_ACCEL=tcg \
	  $(PYTHON) -m pytest -p no:cacheprovider -q tests/integration

test: build guest
	@tools/check-format
	@tools/check-tidy $(BUILD)
	@tools/check-threads $(BUILD)
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

bench: build guest
	@PAMPA_BUILD=$(abspath $(BUILD)) PAMPA_GUEST=$(abspath $(GUEST)) PAMPA_ACCEL=tcg \
	  $(PYTHON) bench/host_bench.py

# Against restic and borg from Debian (installed here, not needed by `make test`).
bench-backup: build
	@dpkg -s restic borgbackup >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends restic borgbackup >/dev/null
	@PAMPA_BUILD=$(abspath $(BUILD)) PAMPA_GUEST=$(abspath $(GUEST)) $(PYTHON) bench/backup_bench.py

# Full restore against live restore: seconds from the restore command to the guest agent's first answer.
bench-restore: build guest
	@PAMPA_BUILD=$(abspath $(BUILD)) PAMPA_GUEST=$(abspath $(GUEST)) PAMPA_ACCEL=tcg $(PYTHON) bench/restore_bench.py

# The state store: SQLite against a real etcd, put/get/CAS and a 1,500-record list.
bench-store: build
	@$(MAKE) --no-print-directory -C $(BUILD) store_bench >/dev/null && $(BUILD)/store_bench

# The pool: live migration (idle, busy) against plain QEMU by hand; pool-wide vm list with 1,500 VMs.
bench-pool: build guest
	@PAMPA_BUILD=$(abspath $(BUILD)) PAMPA_GUEST=$(abspath $(GUEST)) PAMPA_ACCEL=tcg $(PYTHON) bench/pool_bench.py

# HA: from a host's loss (link cut, pampad killed) to the guest ready on another host.
bench-ha: build guest
	@PAMPA_BUILD=$(abspath $(BUILD)) PAMPA_GUEST=$(abspath $(GUEST)) PAMPA_ACCEL=tcg $(PYTHON) bench/ha_bench.py

# Density: idle guests with static against dynamic memory + KSM; pampad's own cost with 50 VMs.
bench-density: build guest
	@PAMPA_BUILD=$(abspath $(BUILD)) PAMPA_GUEST=$(abspath $(GUEST)) PAMPA_ACCEL=tcg $(PYTHON) bench/density_bench.py

# Imports: XVA and P2V against dd and qemu-img convert of the same disk, cold caches.
bench-import: build
	@PAMPA_BUILD=$(abspath $(BUILD)) PAMPA_GUEST=$(abspath $(GUEST)) $(PYTHON) bench/import_bench.py

# The web console: first load and time to interactive with 500 VMs in headless chromium, bytes shipped.
bench-web: build
	@PAMPA_BUILD=$(abspath $(BUILD)) PAMPA_GUEST=$(abspath $(GUEST)) $(PYTHON) bench/web_bench.py

format:
	@find src -name '*.cc' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
