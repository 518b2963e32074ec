#!/usr/bin/python3
# kbdint_client.py - a scripted SSH client for tests/ssh/test-sshd.sh: logs
# in with keyboard-interactive the way a person using remote mode would
# (copy the challenge line from the prompt, run personalsign-respond, paste
# its answer), optionally after publickey, and reports what it saw on
# stdout, one fact per line, for the shell test to grep:
#
#   PROMPT echo=True|False <prompt text, newlines as \n>
#   INFO <text of a message without a prompt>
#   RESPOND rc=N            personalsign-respond's exit code
#   AUTH OK | AUTH FAILED <reason>   (the server said no)
#   CONNECTION ERROR <reason>        (the connection broke instead)
#   CMD OUTPUT: <stdout> rc=N
#
# Needs Debian's python3-paramiko: run with /usr/bin/python3.
import argparse
import base64
import re
import shlex
import socket
import subprocess
import sys

import paramiko

CHALLENGE_RE = re.compile(r"personalsign-challenge:[A-Za-z0-9_-]+")


def say(*parts):
    print(*parts, flush=True)


def retarget(line, changes):
    """The challenge line with some fields changed (host=..., user=...):
    what a response made for another host or user would answer."""
    body = line.split(":", 1)[1]
    text = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    for change in changes:
        key, value = change.split("=", 1)
        text, n = re.subn(r"(?m)^%s=.*$" % re.escape(key),
                          "%s=%s" % (key, value), text)
        if n != 1:
            raise SystemExit("no field %s in the challenge" % key)
    enc = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    return "personalsign-challenge:" + enc


class Answerer:
    def __init__(self, args):
        self.args = args
        self.answered = 0

    def respond(self, challenge):
        if self.args.retarget:
            challenge = retarget(challenge, self.args.retarget)
        if self.args.save_challenge:
            with open(self.args.save_challenge, "w") as f:
                f.write(challenge + "\n")
        if self.args.answer_file:
            with open(self.args.answer_file) as f:
                return f.read().strip()
        cmd = shlex.split(self.args.respond) + [challenge]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=self.args.timeout)
        except subprocess.TimeoutExpired:
            say("RESPOND rc=timeout")
            return ""
        say("RESPOND rc=%d" % p.returncode)
        for line in p.stderr.splitlines():
            say("RESPOND-STDERR", line)
        answer = p.stdout.strip()
        if self.args.save_answer:
            with open(self.args.save_answer, "w") as f:
                f.write(answer + "\n")
        return answer

    def __call__(self, title, instructions, prompts):
        if instructions:
            say("INFO", instructions.replace("\n", "\\n"))
        if not prompts:
            return []
        answers = []
        for text, echo in prompts:
            say("PROMPT echo=%s %s" % (echo, text.replace("\n", "\\n")))
            m = CHALLENGE_RE.search(text) or CHALLENGE_RE.search(
                instructions or "")
            if m and self.args.respond is None and not self.args.answer_file:
                answers.append("")
            elif m:
                answers.append(self.respond(m.group(0)))
            else:
                # not our prompt (a password?): a wrong answer, never a real one
                answers.append("not-a-password")
            self.answered += 1
        return answers


def run_command(transport, command, timeout):
    chan = transport.open_session(timeout=timeout)
    chan.settimeout(timeout)
    chan.exec_command(command)
    out = b""
    while True:
        data = chan.recv(4096)
        if not data:
            break
        out += data
    rc = chan.recv_exit_status()
    say("CMD OUTPUT: %s rc=%d" % (out.decode(errors="replace").strip(), rc))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--respond", help="personalsign-respond command line")
    ap.add_argument("--answer-file", help="answer with this file's text")
    ap.add_argument("--save-answer")
    ap.add_argument("--save-challenge")
    ap.add_argument("--retarget", action="append", default=[],
                    help="FIELD=VALUE to change in the challenge before "
                         "signing it")
    ap.add_argument("--key", help="publickey first (OpenSSH private key)")
    ap.add_argument("--cmd")
    ap.add_argument("--timeout", type=float, default=20)
    args = ap.parse_args()

    sock = socket.create_connection(("127.0.0.1", args.port),
                                    timeout=args.timeout)
    t = paramiko.Transport(sock)
    t.banner_timeout = args.timeout
    t.auth_timeout = args.timeout
    try:
        t.start_client(timeout=args.timeout)
        if args.key:
            key = None
            for cls in (paramiko.RSAKey, paramiko.ECDSAKey,
                        paramiko.Ed25519Key):
                try:
                    key = cls.from_private_key_file(args.key)
                    break
                except Exception:
                    continue
            if key is None:
                raise SystemExit("cannot load " + args.key)
            left = t.auth_publickey(args.user, key)
            say("PUBLICKEY partial, next:", ",".join(left))
        t.auth_interactive(args.user, Answerer(args))
        if not t.is_authenticated():
            say("AUTH FAILED not authenticated")
            return 1
        say("AUTH OK")
        if args.cmd:
            run_command(t, args.cmd, args.timeout)
        return 0
    except paramiko.AuthenticationException as e:
        say("AUTH FAILED", str(e) or type(e).__name__)
        return 1
    except (paramiko.SSHException, socket.error, EOFError) as e:
        # not a refusal: the connection broke (sshd or its PAM child died,
        # a protocol error). Reported apart, so that a crash can never
        # pass for the "refused" the test expects.
        say("CONNECTION ERROR", "%s: %s" % (type(e).__name__, e))
        return 2
    finally:
        t.close()


if __name__ == "__main__":
    sys.exit(main())
