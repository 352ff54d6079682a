#!/usr/bin/env bash
# parse_options.sh: command-line options for recipe scripts (sourced, never run).
#
# Usage, inside a script, after its defaults are declared:
#
#   nj=4                 # number of parallel jobs
#   stage=0
#   use_gpu=false
#   help_message="Usage: $0 [options] <data-dir> <exp-dir>
#     --nj N          number of parallel jobs (default: $nj)
#     --use-gpu BOOL  true|false (default: $use_gpu)"
#   . utils/parse_options.sh
#   [ $# -eq 2 ] || { echo "$help_message" >&2; exit 1; }
#
# Rules:
#   --foo-bar VALUE, --foo_bar VALUE and --foo-bar=VALUE set the variable foo_bar,
#       which the script must have declared; any other option is an error
#       ("parse_options.sh: invalid option --xyz"), exit 1.
#   A variable whose current value is true or false only accepts true or false.
#   --config FILE sources FILE (lines "name=value", comments "# ...", blank lines; every
#       name must be a declared variable) before all other options, so options given on
#       the command line win over the config file, wherever --config stands.
#   --help or -h prints $help_message (if set) and exits 0.
#   Parsing stops at the first argument that does not start with "--" or at "--"
#       (which is removed); the positional arguments that remain are left in "$@".
#
# Works under `set -euo pipefail`. Its own helper variables start with __po_ and are
# unset at the end; the caller's namespace is otherwise untouched.

__po_die() {
  echo "parse_options.sh: $*" >&2
  exit 1
}

# Is "$1" a declared shell variable (set, possibly to the empty string)?
# (Helpers use only __po_-prefixed locals so no local can shadow a caller's variable.)
__po_declared() {
  [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] && declare -p "$1" >/dev/null 2>&1
}

# Set the variable named by option "$1" (e.g. --foo-bar -> foo_bar) to "$2";
# with a third argument, only check that the option names a declared variable.
__po_set() {
  local __po_o=$1 __po_v=${2-} __po_n
  __po_n=${__po_o#--}
  __po_n=${__po_n//-/_}
  if [[ -z "$__po_n" || "$__po_n" == __po_* ]] || ! __po_declared "$__po_n"; then
    __po_die "invalid option $__po_o"
  fi
  [[ $# -lt 3 ]] || return 0
  case "${!__po_n-}" in
    true | false)
      [[ "$__po_v" == true || "$__po_v" == false ]] ||
        __po_die "option $__po_o expects true or false, got '$__po_v'"
      ;;
  esac
  printf -v "$__po_n" '%s' "$__po_v"
}

__po_source_config() {
  local __po_f=$1 __po_l=0 __po_line
  [[ -f "$__po_f" ]] || __po_die "config file '$__po_f' does not exist"
  while IFS= read -r __po_line || [[ -n "$__po_line" ]]; do
    __po_l=$((__po_l + 1))
    [[ "$__po_line" =~ ^[[:space:]]*(#.*)?$ ]] && continue
    if [[ "$__po_line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)= ]]; then
      __po_line=${BASH_REMATCH[1]}
      __po_declared "$__po_line" ||
        __po_die "$__po_f:$__po_l: unknown variable '$__po_line' (not an option of this script)"
    else
      __po_die "$__po_f:$__po_l: expected 'name=value', got '$__po_line'"
    fi
  done <"$__po_f"
  # shellcheck disable=SC1090
  . "$__po_f"
}

# Pass 1: the --config files, in order, up to the first positional argument.
__po_i=1
while [[ $__po_i -le $# ]]; do
  __po_arg=${!__po_i}
  case "$__po_arg" in
    --) break ;;
    --config=*) __po_source_config "${__po_arg#--config=}" ;;
    --config)
      __po_i=$((__po_i + 1))
      [[ $__po_i -le $# ]] || __po_die "option --config needs a value"
      __po_source_config "${!__po_i}"
      ;;
    --help | -h) break ;;
    --*=*) ;;
    --*) __po_i=$((__po_i + 1)) ;;  # skip its value
    *) break ;;
  esac
  __po_i=$((__po_i + 1))
done

# Pass 2: every other option, in order.
while [[ $# -gt 0 ]]; do
  case "$1" in
    --)
      shift
      break
      ;;
    --help | -h)
      if [[ -n "${help_message-}" ]]; then
        printf '%s\n' "$help_message"
      else
        echo "Usage: $0 [options] <args>  (this script has no help message; see its source)"
      fi
      exit 0
      ;;
    --config=*) shift ;;
    --config) shift 2 ;;  # sourced in pass 1
    --*=*)
      __po_set "${1%%=*}" "${1#*=}"
      shift
      ;;
    --*)
      [[ $# -ge 2 ]] || { __po_set "$1" "" check; __po_die "option $1 needs a value"; }
      __po_set "$1" "$2"
      shift 2
      ;;
    *) break ;;
  esac
done

unset -f __po_die __po_declared __po_set __po_source_config
unset -v __po_i __po_arg
true
