#!/usr/bin/env python3
"""Fills the expected alerts of the template oracle files from promtool.

Every `*.test.yml` here is a `promtool test rules` file. This script runs
each test group through the real `promtool` with empty `exp_alerts`,
reads the alerts promtool reports it got (labels and rendered
annotations), and writes them back as the expected alerts. The files then
hold Prometheus' own output; `tests/template_oracle.rs` checks that
promtool still passes them and that Tidemark's expander renders the same.

Usage: python3 regen.py [FILE.test.yml ...]   (default: all)
"""
import copy
import os
import re
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def represent_str(dumper, data):
    """Quotes strings a YAML 1.2 reader would take for numbers or booleans."""
    style = None
    try:
        float(data)
        style = "'"
    except ValueError:
        if data.lower() in ('', 'true', 'false', 'null', '~', 'yes', 'no', 'on', 'off'):
            style = "'"
    return dumper.represent_scalar('tag:yaml.org,2002:str', data, style=style)


yaml.SafeDumper.add_representer(str, represent_str)


def go_unquote(s):
    out, i = [], 0
    simple = {'n': '\n', 't': '\t', 'r': '\r', 'a': '\a', 'b': '\b', 'f': '\f', 'v': '\v', '\\': '\\', '"': '"', "'": "'"}
    while i < len(s):
        c = s[i]
        if c != '\\':
            out.append(c)
            i += 1
            continue
        e = s[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e in 'xuU':
            n = {'x': 2, 'u': 4, 'U': 8}[e]
            out.append(chr(int(s[i + 2:i + 2 + n], 16)))
            i += 2 + n
        else:
            raise ValueError('escape %r in %r' % (e, s))
    return ''.join(out)


def parse_set(text):
    return {k: go_unquote(v) for k, v in PAIR.findall(text)}


def got_alerts(output):
    """(alertname, time) -> list of (labels, annotations) promtool got."""
    result = {}
    key = None
    lines = output.splitlines()
    in_got = False
    labels = None
    for line in lines:
        m = re.match(r'\s*alertname: (.*), time: (.*), $', line)
        if m:
            key = (m.group(1), m.group(2))
            result[key] = []
            in_got = False
            continue
        s = line.strip()
        if s.startswith('got:['):
            in_got = True
            continue
        if not in_got or key is None:
            continue
        if s.startswith('Labels:'):
            labels = parse_set(s[len('Labels:'):])
        elif s.startswith('Annotations:'):
            result[key].append((labels, parse_set(s[len('Annotations:'):])))
    return result


def fmt_time(eval_time):
    # promtool prints model.Duration: 0s, 1m, 1h5m ...
    return str(eval_time) if str(eval_time) != '0' else '0s'


def regen(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    for gi, group in enumerate(doc['tests']):
        probe = copy.deepcopy(doc)
        probe['tests'] = [copy.deepcopy(group)]
        for t in probe['tests'][0].get('alert_rule_test', []):
            t['exp_alerts'] = []
        with tempfile.NamedTemporaryFile('w', suffix='.yml', dir=HERE, delete=False) as tmp:
            yaml.safe_dump(probe, tmp, sort_keys=False, allow_unicode=True, width=1 << 20)
            name = tmp.name
        try:
            out = subprocess.run(['promtool', 'test', 'rules', name], capture_output=True, text=True, cwd=HERE)
        finally:
            os.unlink(name)
        got = got_alerts(out.stdout + out.stderr)
        for t in group.get('alert_rule_test', []):
            key = (t['alertname'], fmt_time(t['eval_time']))
            alerts = got.get(key, [])
            t['exp_alerts'] = [
                {
                    'exp_labels': {k: v for k, v in labels.items() if k != 'alertname'},
                    'exp_annotations': annotations,
                }
                for labels, annotations in alerts
            ]
    with open(path, 'w') as f:
        f.write('# Expected alerts written by regen.py from promtool 2.42 output; do not edit them by hand.\n')
        yaml.safe_dump(doc, f, sort_keys=False, allow_unicode=True, width=1 << 20)


def main():
    files = sys.argv[1:] or sorted(os.path.join(HERE, f) for f in os.listdir(HERE) if f.endswith('.test.yml'))
    for f in files:
        regen(f)
        check = subprocess.run(['promtool', 'test', 'rules', f], capture_output=True, text=True, cwd=HERE)
        print(f, 'promtool:', 'PASS' if check.returncode == 0 else 'FAIL\n' + check.stdout + check.stderr)


if __name__ == '__main__':
    main()
