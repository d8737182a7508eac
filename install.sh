#!/bin/sh
# Installs axme from this checkout with cargo and, where systemd runs, a service unit.
#
#   ./install.sh                 build and install to /usr/local/bin (or ~/.cargo/bin if not root)
#   PREFIX=/opt/axme ./install.sh
#   AXME_NO_SYSTEMD=1 ./install.sh   skip the unit even where systemd exists
#
# It never touches an existing database or key: the unit starts `axme serve` on
# /var/lib/axme/axme.db, which is created (with a generated admin key, written to
# /var/lib/axme/admin.key readable by the axme user only) only on the first start.
set -eu

here=$(cd "$(dirname "$0")" && pwd)

if ! command -v cargo >/dev/null 2>&1; then
    echo "install.sh: cargo is needed to build axme (https://rustup.rs)" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    prefix=${PREFIX:-/usr/local}
else
    prefix=${PREFIX:-$HOME/.cargo}
fi

echo "building axme and installing it to $prefix/bin ..."
cargo install --locked --path "$here" --root "$prefix" --force
bin="$prefix/bin/axme"
"$bin" --version

if [ "${AXME_NO_SYSTEMD:-}" = "1" ] || [ "$(id -u)" -ne 0 ] || [ ! -d /run/systemd/system ]; then
    echo "installed $bin (no systemd unit written)"
    echo "run it with: $bin serve --data ./axme.db"
    exit 0
fi

if ! id axme >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/axme --shell /usr/sbin/nologin axme
fi
install -d -o axme -g axme -m 0750 /var/lib/axme

unit=/etc/systemd/system/axme.service
if [ -e "$unit" ]; then
    echo "keeping the existing $unit"
else
    cat >"$unit" <<UNIT
[Unit]
Description=axme intent server
After=network.target

[Service]
User=axme
Group=axme
ExecStart=$bin serve --data /var/lib/axme/axme.db --api-key-file /var/lib/axme/admin.key --listen 127.0.0.1:8080
Restart=on-failure
KillSignal=SIGTERM
TimeoutStopSec=30
LimitNOFILE=65536
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
ReadWritePaths=/var/lib/axme
PrivateTmp=true

[Install]
WantedBy=multi-user.target
UNIT
    echo "wrote $unit"
fi
systemctl daemon-reload
systemctl enable --now axme.service
echo "axme is running; on first start its admin key is written to /var/lib/axme/admin.key (readable by the axme user only: sudo cat it)"
