#!/usr/bin/env bash
# systemd.sh — check the unit files in systemd/ with `systemd-analyze verify`.
#
# The units are copied to a temporary folder and their ExecStart= paths
# (/usr/local/bin/DAEMON) rewritten to executables that exist here: the built
# daemon in $BIN when there is one, else /bin/true (verify checks that the
# command exists, never runs it). Templates are verified as an instance
# (loaderd@.service as loaderd@0.service).
#
# Fails (exit 1, printing the messages) on any warning or error that names one
# of our units or files, or when verify exits non-zero. Messages about other
# units of this host are ignored. Also checks what verify does not: that units
# named in dependencies exist, the settings the daemons rely on, and the
# syntax of the Slurm example.
#
# Env: BIN (built binaries, default build/bin, relative to the current folder).
set -u

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP systemd: systemd-analyze not found"
    exit 0
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
src=$root/systemd

shopt -s nullglob
units=()
for f in "$src"/*.service "$src"/*.target; do units+=("$(basename "$f")"); done
if [ ${#units[@]} -eq 0 ]; then
    echo "FAIL systemd: no unit files in $src"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ldmpipe-systemd.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/units" "$tmp/bin"

bin=${BIN:-build/bin}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac

# Executables to point ExecStart= at, reached through links in $tmp/bin so the
# unit text never holds a path with blanks or '%' in it.
for d in loaderd encoderd trainerd evald ldmctl; do
    if [ -f "$bin/$d" ] && [ -x "$bin/$d" ]; then
        ln -s "$bin/$d" "$tmp/bin/$d"
    else
        ln -s /bin/true "$tmp/bin/$d"
    fi
done

fails=0
fail() { # what, message lines...
    local what=$1; shift
    echo "FAIL systemd: $what"
    printf '     %s\n' "$@"
    fails=$((fails + 1))
}

# Folders where this host keeps unit files, for dependencies on its units.
mapfile -t hostdirs < <(systemd-analyze unit-paths 2>/dev/null)
[ ${#hostdirs[@]} -gt 0 ] || hostdirs=(/etc/systemd/system /lib/systemd/system /usr/lib/systemd/system)

# static_problems UNIT: print what verify does not check, one problem a line.
static_problems() {
    local u=$1 f=$src/$1 name want ref file d found
    case $u in
    *.service)
        name=${u%%@*}; name=${name%.service}
        # Settings the daemons and the install rely on; extended regular
        # expressions, each matched against whole lines.
        # shellcheck disable=SC2016
        for want in 'Type=notify' 'NotifyAccess=main' 'WatchdogSec=[1-9].*' \
                    'Restart=on-failure' 'RestartSec=.+' 'TimeoutStopSec=.+' \
                    'User=ldmpipe' 'Group=ldmpipe' 'UMask=0077' \
                    'RuntimeDirectory=ldmpipe' 'RuntimeDirectoryMode=0700' \
                    'RuntimeDirectoryPreserve=yes' \
                    'Environment=LDMPIPE_RUN_DIR=/run/ldmpipe' \
                    "ExecStart=/usr/local/bin/$name -c /etc/ldmpipe/ldmpipe\\.conf( .*)?" \
                    'ExecReload=/bin/kill -HUP \$MAINPID' \
                    'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' \
                    'PrivateTmp=yes' 'PartOf=ldmpipe\.target' 'WantedBy=ldmpipe\.target'; do
            grep -Eq "^$want\$" "$f" || echo "no line matching ^$want\$"
        done
        case $u in *@.service)
            grep -Eq '^ExecStart=.* --id=%i( |$)' "$f" || echo "ExecStart= lacks --id=%i" ;;
        esac
        ;;
    esac
    # Every unit named in a dependency exists: ours in systemd/, others on
    # this host (verify loads them but does not complain when one is missing).
    while IFS= read -r ref; do
        file=$ref
        case $ref in *@?*.*) file=${ref%%@*}@.${ref##*.} ;; esac
        case $ref in
        loaderd*|encoderd*|trainerd*|evald*|ldmpipe*)
            [ -f "$src/$file" ] || echo "names a unit that is not in systemd/: $ref" ;;
        *)
            found=no
            for d in "${hostdirs[@]}"; do
                if [ -e "$d/$ref" ] || [ -e "$d/$file" ]; then found=yes; break; fi
            done
            [ $found = yes ] || echo "names a unit this host does not have: $ref" ;;
        esac
    done < <(sed -n -E 's/^(Wants|Requires|Requisite|BindsTo|PartOf|Upholds|After|Before|Conflicts|WantedBy|RequiredBy|UpheldBy|Also)=//p' \
                 "$f" | tr ' ' '\n' | sed '/^$/d')
}

# ---- systemd-analyze verify, on copies whose ExecStart= paths exist here
for u in "${units[@]}"; do
    sed -E "s#^(Exec[A-Za-z]*=[-@:+!]*)/usr/local/bin/(loaderd|encoderd|trainerd|evald|ldmctl)([[:space:]]|\$)#\\1$tmp/bin/\\2\\3#" \
        "$src/$u" >"$tmp/units/$u"
done

opts=()
help=$(systemd-analyze --help 2>&1)
case $help in *--man=*) opts+=(--man=no) ;; esac
case $help in *--recursive-errors*) opts+=(--recursive-errors=no) ;; esac

# Only the messages about the unit given count as ours: they name our files
# (in $tmp) or our units. Messages about the host's units are ignored.
ours="$tmp/|(loaderd|encoderd|trainerd|evald)(@[^[:space:]:]*)?\\.service|ldmpipe\\.target"

for u in "${units[@]}"; do
    problems=()
    while IFS= read -r l; do problems+=("$l"); done < <(static_problems "$u")

    arg=$u
    case $u in *@.service) arg=${u%@.service}@0.service ;; esac
    # Fixed logging: to stderr whatever the caller's environment says (under a
    # CI service it could go to the journal), notice and above (no info chatter).
    out=$(cd "$tmp" && env LC_ALL=C SYSTEMD_LOG_LEVEL=notice SYSTEMD_LOG_TARGET=console \
            SYSTEMD_LOG_COLOR=0 SYSTEMD_LOG_TIME=0 SYSTEMD_LOG_LOCATION=0 \
            systemd-analyze verify ${opts[@]+"${opts[@]}"} "$tmp/units/$arg" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] || printf '%s\n' "$out" | grep -Eq -- "$ours"; then
        problems+=("systemd-analyze verify $arg: exit $rc")
        while IFS= read -r l; do
            [ -n "$l" ] && problems+=("${l//$tmp\/units\//systemd/}")
        done <<<"$out"
    fi

    if [ ${#problems[@]} -eq 0 ]; then
        echo "ok   systemd: $u"
    else
        fail "$u" "${problems[@]}"
    fi
done

# ---- the Slurm example parses
if [ -f "$src/slurm-train.sbatch" ]; then
    if msg=$(bash -n "$src/slurm-train.sbatch" 2>&1); then
        echo "ok   systemd: slurm-train.sbatch (bash -n)"
    else
        fail slurm-train.sbatch "$msg"
    fi
fi

[ $fails -eq 0 ] || exit 1
exit 0
