#!/bin/sh
# caffebox-run: made by 'caffebox export' from @IMAGE@.
# Sets what the image's ENV sets, then runs the command: caffebox-run caffe train ...
set -e
usage() {
    cat <<'USAGE'
usage: caffebox-run [--layers DIR]... [--] PROGRAM ARGS...

Runs PROGRAM with the image's environment (PATH, PYTHONPATH, ...), for ch-run, Apptainer
and chroot. Python layers: --layers DIR puts DIR on PYTHONPATH (the folder that holds
my_layer.py for python_param { module: 'my_layer' }); so does the tutorial's own
PYTHONPATH=DIR:$PYTHONPATH before the runtime's command. Your entries come first, then
the image's (pycaffe, caffebox_layers).
USAGE
}
layers=
while [ $# -gt 0 ]; do
    case "$1" in
        --layers) [ $# -ge 2 ] || { usage >&2; exit 2; }
            layers="${layers:+$layers:}$2"; shift 2 ;;
        --layers=*) layers="${layers:+$layers:}${1#--layers=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { usage >&2; exit 2; }
if [ -n "$layers" ]; then PYTHONPATH="$layers${PYTHONPATH:+:$PYTHONPATH}"; fi
@ENV@
export PYTHONUNBUFFERED=1
# An arbitrary uid may have no home, or an unwritable one.
if [ -z "${HOME:-}" ] || [ ! -d "$HOME" ] || [ ! -w "$HOME" ]; then
    export HOME="${TMPDIR:-/tmp}"
fi
@CUDA@
exec "$@"
