"""`dbrepl init|plan|apply|destroy|status|bundle|permissions`: the spec and the estate itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dbrepl.cli.common import (
    ConfigOpt,
    EnvOpt,
    JsonOpt,
    SuffixOpt,
    YesOpt,
    ask,
    err,
    escape,
    estate,
    handled,
    out,
    sandbox_of,
)
from dbrepl.invocation import command, quote

if TYPE_CHECKING:
    from dbrepl.app.provision import Applied

app = typer.Typer()


@app.command()
@handled
def plan(ctx: typer.Context, suffix: SuffixOpt = None, config: ConfigOpt = None, env: EnvOpt = None,
         json_: JsonOpt = False,
         detailed_exitcode: Annotated[bool, typer.Option(
             "--detailed-exitcode", help="Exit 3 when there are changes, 2 when apply would refuse some "
                                         "(a replacement).")] = False) -> None:
    """Show what apply would change and preflight's findings (exit 2 when a check fails). Reads only."""
    from dbrepl.app import load_checked, refuse_failed, refuse_unverified_protected
    from dbrepl.app.provision import replacement_way_out
    from dbrepl.render import render_findings, render_plan

    target = load_checked(config, suffix, env)
    refuse_unverified_protected(target.spec, sandbox_of(ctx))
    p = estate(ctx, target.spec, target.suffix, target.envs).engine().plan()
    if json_:
        print(json.dumps(p.to_json(), default=str))
    else:
        render_plan(out, p)
        if p.refused:
            out.print(f"[bold red]refused:[/] apply would refuse this plan: {len(p.refused)} resource(s) would have "
                      "to be replaced (marked refused), which dbrepl never does in place; "
                      f"{escape(replacement_way_out(target, p.refused))}")
        render_findings(out, p.findings)
    refuse_failed(p.findings)
    if detailed_exitcode and p.refused:
        raise typer.Exit(2)
    if detailed_exitcode and p.changes:
        raise typer.Exit(3)


@app.command()
@handled
def apply(ctx: typer.Context, suffix: SuffixOpt = None, config: ConfigOpt = None, env: EnvOpt = None,
          yes: YesOpt = False,
          reboot: Annotated[bool, typer.Option(
              "--reboot", help="Also reboot cluster members waiting for a parameter group (pending-reboot) in "
                               "protected environments, or where aurora.reboot_for_parameters is false: one at a "
                               "time, readers first, writer last.")] = False) -> None:
    """Create or repair the estate so it matches the spec."""
    from dbrepl.app import provision as estate_app
    from dbrepl.render import Progress, render_findings, render_plan

    prepared = estate_app.prepare_apply(config, suffix, env, sandbox=sandbox_of(ctx), reboot=reboot,
                                        can_ask=yes or _on_terminal(), progress=Progress(err))
    render_plan(out, prepared.plan)
    render_findings(out, prepared.plan.findings)
    if prepared.refusal is not None:
        raise prepared.refusal  # exit 2 before anything changes
    if prepared.question and not yes:
        ask(prepared.question)
    _render_applied(estate_app.apply(prepared))


def _render_applied(applied: Applied) -> None:
    from dbrepl.app.sandbox import HOST
    from dbrepl.render import render_notes

    if applied.done is not None:
        s = applied.done.summary
        out.print(f"[bold green]Apply complete:[/] {s['create']} created, {s['update']} updated, "
                  f"{s['delete']} deleted.")
        render_notes(out, [f"held back: {n}" for n in applied.done.notes])
    for b in applied.bound:
        out.print(f"Stand-in for {b.env} ({HOST}:{b.port}): master user {escape(b.user)} "
                  "with the password of its secret.")
    for note in applied.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    if applied.bind_error is not None:
        raise applied.bind_error


@app.command()
@handled
def destroy(ctx: typer.Context, suffix: SuffixOpt = None, config: ConfigOpt = None, env: EnvOpt = None,
            yes: YesOpt = False,
            include_protected: Annotated[bool, typer.Option(
                "--include-protected",
                help="Also destroy protected environments (prod by default): turn deletion protection off, "
                     "keep a final snapshot of each protected cluster, then delete.")] = False) -> None:
    """Delete everything dbrepl made for this suffix (and nothing else). Protected environments
    need --include-protected; their clusters leave a final snapshot, which destroy never deletes."""
    from dbrepl.app import provision as estate_app
    from dbrepl.render import Progress, render_notes, render_plan

    prepared = estate_app.prepare_destroy(config, suffix, env, sandbox=sandbox_of(ctx),
                                          include_protected=include_protected, can_ask=yes or _on_terminal(),
                                          progress=Progress(err))
    render_plan(out, prepared.plan, verb="Destroy")
    if prepared.question is None:
        return
    if not yes:
        ask(prepared.question)
    done = estate_app.destroy(prepared)
    out.print(f"[bold green]Destroy complete:[/] {done.summary['delete']} deleted.")
    for c in done.changes:
        if c.final_snapshot:
            out.print(f"Final snapshot kept: {escape(c.final_snapshot)} (of {escape(c.name)}; "
                      "destroy never deletes it)")
    render_notes(out, prepared.plan.notes)  # what was kept with the snapshots, and how to remove it all later


def _on_terminal() -> bool:
    """Whether there is a terminal to ask on (without one, --yes is needed)."""
    return sys.stdin.isatty()


@app.command()
@handled
def status(ctx: typer.Context, suffix: SuffixOpt = None, config: ConfigOpt = None, env: EnvOpt = None,
           json_: JsonOpt = False,
           detailed_exitcode: Annotated[bool, typer.Option(
               "--detailed-exitcode", help="Exit 3 when a resource is drifted, missing or extra.")] = False) -> None:
    """The seed's outputs (endpoints, bucket, function ARNs), every resource's state, each alarm's state and
    each sync route's last run (time, age, result, rows), then a summary line. Reads only."""
    from dbrepl.app import load_checked
    from dbrepl.app.report import status_report
    from dbrepl.render import render_status

    target = load_checked(config, suffix, env)
    st = status_report(estate(ctx, target.spec, target.suffix, target.envs))
    if json_:
        print(json.dumps(st, default=str))
    else:
        render_status(out, st)
    if detailed_exitcode and any(st["summary"][s] for s in ("drifted", "missing", "extra")):
        raise typer.Exit(3)


@app.command()
@handled
def init(path: Annotated[Path | None, typer.Argument(help="Where to write it.", metavar="PATH",
                                                     show_default="config/environments.yaml")] = None,
         force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False) -> None:
    """Write the default spec (with its comments) to start from; edit it, then plan."""
    from dbrepl.app.files import write_default_spec

    written = write_default_spec(path, force=force)
    out.print(f"Wrote {escape(str(written))}: edit it, then {escape(_first_plan(path))} "
              "(any suffix of 1-20 of a-z, 0-9, '-' names your estate)")


_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                         "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def _first_plan(path: Path | None) -> str:
    """The plan to run after init, runnable as printed: with the spec just written; in the sandbox
    when one runs here (or was asked for); when no AWS credentials are set up either (no variable,
    no ~/.aws), the sandbox's start first."""
    import os

    from dbrepl import invocation
    from dbrepl.app.sandbox import Sandbox

    spec = f"--config {invocation.quote(path)}" if path is not None else ""
    suffix = invocation.current().suffix or "demo"
    if invocation.current().sandbox or Sandbox.running() is not None:
        return f"run `{command('plan', spec, suffix=suffix, config=False, sandbox=True)}`"
    aws = Path.home() / ".aws"
    if any(os.environ.get(v) for v in _CREDENTIAL_VARIABLES) or (aws / "credentials").is_file() \
            or (aws / "config").is_file():
        return f"run `{command('plan', spec, suffix=suffix, config=False, sandbox=False)}`"
    start = command("sandbox start", spec, suffix=False, config=False, sandbox=False)
    return (f"with no AWS credentials here, try it in the local sandbox: `{start}`, then "
            f"`{command('plan', spec, suffix=suffix, config=False, sandbox=True)}`")


@app.command()
@handled
def bundle(output: Annotated[Path, typer.Option("--output", "-o",
                                                help="Where to write the zip.")] = Path("bundle.zip"),
           config: ConfigOpt = None) -> None:
    """Write the deterministic Lambda bundle (handlers, dbrepl.sync, pymysql, the spec's CA bundle)."""
    from dbrepl.app.files import write_bundle

    b = write_bundle(output, config)
    tls = f"CA bundle {b.ca_bundle}" if b.ca_bundle else "no CA bundle: the functions' TLS is unverified"
    out.print(f"Wrote {b.path} ({b.size} bytes, CodeSha256 {b.code_sha256}; {tls})")


@app.command()
@handled
def permissions(ctx: typer.Context, suffix: SuffixOpt = None, config: ConfigOpt = None,
                json_: Annotated[bool, typer.Option("--json", help="Print one policy document only (valid IAM "
                                                    "JSON): the deployer's, or --role's.")] = False,
                account: Annotated[str | None, typer.Option(
                    "--account", help="The deployer's 12-digit account id.", show_default="read from STS")] = None,
                role: Annotated[str | None, typer.Option(
                    "--role", help="With --json: the policy of this role of the spec (an environment's "
                                   "account.role_arn) instead of the deployer's.")] = None,
                part: Annotated[int | None, typer.Option(
                    "--part", min=1, help="With --json, for a policy larger than one managed policy: print this "
                                          "part of it (each part fits IAM's 6144 characters).")] = None) -> None:
    """The IAM policy plan, apply, status and destroy need for this spec and suffix, derived from what
    the steps declare: every action named, resources scoped where AWS allows. Reads only the account id."""
    from dbrepl.app import load_checked
    from dbrepl.app.permissions import choose, choose_part, deployer_policies

    target = load_checked(config, suffix)
    policies = deployer_policies(target, account=account, sandbox=sandbox_of(ctx))
    chosen = choose(policies, role)
    if json_:
        print(json.dumps(choose_part(chosen, part), indent=2))
        return
    _render_permissions(policies if role is None else [chosen])


def _render_permissions(policies: list) -> None:
    from dbrepl.app.permissions import DEPLOYER, policy_size

    def say(text: str = "") -> None:  # no emoji: ARNs hold ":secret:"
        out.print(text, emoji=False)

    for d in policies:
        pr = d.principal
        where = f"account {pr.account}, {', '.join(pr.regions) or 'no region of its own'}"
        if pr.who == DEPLOYER:
            title = "Deployer: the credentials you run dbrepl with"
            how = command("permissions --json")
        else:
            title = f"Role {pr.who}: assumed by the deployer"
            how = command("permissions --json", f"--role {quote(pr.who)}")
        envs = ", ".join(pr.envs) + (" and the shared resources (bucket, functions, their role)" if pr.hub else "")
        say(f"[bold]{escape(title)}[/] ({escape(where)}; environments: {escape(envs or 'none')})")
        for st in d.document["Statement"]:
            res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            say(f"  [cyan]{st['Sid']}[/]: {len(st['Action'])} action(s) on {escape(', '.join(res))}")
            if "Condition" in st:
                say(f"    when {escape(json.dumps(st['Condition']))}")
            say("    " + escape(", ".join(st["Action"])))
        if d.unscoped:
            say("  Resource \"*\" because:")
            whys: dict[str, list[str]] = {}
            for act, why in d.unscoped.items():
                whys.setdefault(why, []).append(act)
            for why, acts in whys.items():
                say(f"    {escape(', '.join(acts))}: {escape(why)}")
        actions = sum(len(st["Action"]) for st in d.document["Statement"])
        parts = d.parts
        if len(parts) == 1:
            say(f"  {actions} actions, {policy_size(d.document)} of IAM's 6144 characters for a managed policy. "
                f"The document: {escape(how)}")
        else:
            sizes = ", ".join(str(policy_size(x)) for x in parts)
            say(f"  {actions} actions, {policy_size(d.document)} characters: more than one managed policy holds "
                f"(6144), so it comes in {len(parts)} parts ({sizes} characters); attach all of them. "
                f"The documents: {escape(how)} --part 1 ... --part {len(parts)}")
        say()
