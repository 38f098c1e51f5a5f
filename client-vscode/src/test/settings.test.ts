import { strict as assert } from "node:assert";
import { describe, it } from "node:test";

import {
    changeNeedsRestart,
    commandsToCover,
    COMMANDS,
    expandVariables,
    initializationOptions,
    launchSettings,
    SECTION,
    SERVER_BOOTSTRAP,
    SERVER_COMMANDS,
    insideFolders,
    serverCommandLine,
    serverSettings,
    type Variables,
    verifyArguments,
    verifyOutcomeMessage,
} from "../settings";

/** A reader over what the user set; keys that are absent were not set. */
function reader(values: Record<string, unknown>) {
    return (key: string): unknown => values[key];
}

const vars: Variables = {
    workspaceFolder: "/work/project",
    userHome: "/home/ada",
    env: { VIRTUAL_ENV: "/work/project/.venv", LOG_LEVEL: "DEBUG" },
};

describe("serverSettings and initializationOptions", () => {
    it("send only trust when the user set nothing, so pyproject.toml values are not overridden", () => {
        assert.deepEqual(initializationOptions(reader({}), false), { trusted: false });
        assert.deepEqual(initializationOptions(reader({}), true), { trusted: true });
        assert.deepEqual(serverSettings(reader({})), {});
    });

    it("forward the values the user set, under the server's keys", () => {
        const set = { k: 4, maxTokens: 128, nGpuLayers: 0, testTimeoutS: 5.5, requireTests: true, modelPath: "/m.gguf" };
        assert.deepEqual(serverSettings(reader(set)), set);
        assert.deepEqual(initializationOptions(reader(set), true), { trusted: true, ...set });
        assert.deepEqual(serverSettings(reader({ temperature: 0, seed: 7, promptFormat: "fim" })), {
            temperature: 0,
            seed: 7,
            promptFormat: "fim",
        });
    });

    it("keep an explicit null (nGpuLayers: server decides) but drop an empty model path", () => {
        assert.deepEqual(serverSettings(reader({ nGpuLayers: null, modelPath: "" })), { nGpuLayers: null });
    });

    it("never forward client-only keys or a trust setting: trust comes from VS Code, in initializationOptions only", () => {
        const values = { interpreter: ["py"], serverArgs: ["-v"], "trace.server": "verbose", trusted: true };
        assert.deepEqual(serverSettings(reader(values)), {});
        assert.deepEqual(initializationOptions(reader(values), false), { trusted: false });
    });

    it("leave validation to the server: a wrong type goes through as written", () => {
        assert.deepEqual(serverSettings(reader({ k: "many" })), { k: "many" });
    });
});

describe("launchSettings", () => {
    it("defaults to no interpreter and no extra arguments", () => {
        assert.deepEqual(launchSettings(reader({}), vars), { interpreter: [], serverArgs: [], problems: [] });
    });

    it("expands variables in the interpreter and server arguments", () => {
        const launch = launchSettings(
            reader({
                interpreter: ["${env:VIRTUAL_ENV}/bin/python"],
                serverArgs: ["--log-level", "${env:LOG_LEVEL}"],
            }),
            vars,
        );
        assert.deepEqual(launch.interpreter, ["/work/project/.venv/bin/python"]);
        assert.deepEqual(launch.serverArgs, ["--log-level", "DEBUG"]);
        assert.deepEqual(launch.problems, []);
    });

    it("ignores a value that is not a list of strings, and says so", () => {
        const launch = launchSettings(reader({ interpreter: "/usr/bin/python3", serverArgs: ["-v", 3] }), vars);
        assert.deepEqual(launch.interpreter, []);
        assert.deepEqual(launch.serverArgs, []);
        assert.equal(launch.problems.length, 2);
        assert.match(launch.problems[0] ?? "", /lspVerify\.interpreter must be a list of strings/);
        assert.match(launch.problems[1] ?? "", /lspVerify\.serverArgs/);
    });

    it("rejects an interpreter whose program name is empty", () => {
        const launch = launchSettings(reader({ interpreter: ["", "-m", "x"] }), vars);
        assert.deepEqual(launch.interpreter, []);
        assert.match(launch.problems[0] ?? "", /empty program name/);
    });
});

describe("expandVariables", () => {
    it("expands known variables and ~, leaves unknown ones as written", () => {
        assert.equal(expandVariables("${workspaceFolder}/.venv/bin/python", vars), "/work/project/.venv/bin/python");
        assert.equal(expandVariables("~/venv/bin/python", vars), "/home/ada/venv/bin/python");
        assert.equal(expandVariables("${userHome}/x", vars), "/home/ada/x");
        assert.equal(expandVariables("${env:MISSING}x", vars), "x");
        assert.equal(expandVariables("${config:python.path}", vars), "${config:python.path}");
        assert.equal(expandVariables("a~/b", vars), "a~/b");
    });

    it("leaves ${workspaceFolder} alone when no folder is open", () => {
        assert.equal(expandVariables("${workspaceFolder}/py", { ...vars, workspaceFolder: undefined }), "${workspaceFolder}/py");
    });
});

describe("serverCommandLine", () => {
    const noArgs = { interpreter: [], serverArgs: [] };

    it("never imports the server from the workspace (cwd is taken off sys.path first)", () => {
        assert.match(SERVER_BOOTSTRAP, /^import sys; del sys\.path\[0\]; from lsp_verify\.cli import main;/);
    });

    it("prefers the interpreter setting over the Python extension", () => {
        const line = serverCommandLine({ interpreter: ["uv", "run", "python"], serverArgs: ["-v"] }, ["/env/bin/python"], "linux");
        assert.deepEqual(line, {
            command: "uv",
            args: ["run", "python", "-c", SERVER_BOOTSTRAP, "serve", "-v"],
            source: "setting",
            passedOver: "",
        });
    });

    it("uses the Python extension's interpreter when the setting is empty", () => {
        const line = serverCommandLine(noArgs, ["conda", "run", "-n", "dev", "python"], "linux");
        assert.equal(line.command, "conda");
        assert.deepEqual(line.args, ["run", "-n", "dev", "python", "-c", SERVER_BOOTSTRAP, "serve"]);
        assert.equal(line.source, "python-extension");
    });

    it("passes over a Python extension interpreter inside a workspace that is not trusted", () => {
        const untrusted = { trusted: false, folders: ["/work/repo"], cwd: "/work/repo" };
        const planted = serverCommandLine(noArgs, ["/work/repo/.venv/bin/python"], "linux", untrusted);
        assert.equal(planted.command, "python3");
        assert.equal(planted.source, "default");
        assert.match(planted.passedOver, /\/work\/repo\/\.venv\/bin\/python lies inside the workspace, which is not trusted/);
        // The same interpreter once the workspace is trusted, and one outside it, are used as before.
        const trusted = serverCommandLine(noArgs, ["/work/repo/.venv/bin/python"], "linux", { ...untrusted, trusted: true });
        assert.deepEqual([trusted.command, trusted.source, trusted.passedOver], ["/work/repo/.venv/bin/python", "python-extension", ""]);
        const outside = serverCommandLine(noArgs, ["/home/ada/.venvs/x/bin/python"], "linux", untrusted);
        assert.deepEqual([outside.command, outside.passedOver], ["/home/ada/.venvs/x/bin/python", ""]);
        // The user's own interpreter setting is theirs to choose (a workspace's is a restricted setting).
        const setting = serverCommandLine({ interpreter: ["/work/repo/env/bin/python"], serverArgs: [] }, undefined, "linux", untrusted);
        assert.deepEqual([setting.command, setting.source], ["/work/repo/env/bin/python", "setting"]);
    });

    it("finds the workspace part of an interpreter command line", () => {
        const folders = ["/work/repo", "/work/other"];
        assert.equal(insideFolders(["/work/repo/.venv/bin/python"], folders, "/work/repo", "linux"), "/work/repo/.venv/bin/python");
        assert.equal(insideFolders([".venv/bin/python"], folders, "/work/repo", "linux"), ".venv/bin/python");
        assert.equal(insideFolders(["conda", "run", "-p", "./env", "python"], folders, "/work/repo", "linux"), "./env");
        assert.equal(insideFolders(["/work/other"], folders, "/work/repo", "linux"), "/work/other");
        assert.equal(insideFolders(["python3"], folders, "/work/repo", "linux"), undefined);
        assert.equal(insideFolders(["conda", "run", "-n", "dev", "python"], folders, "/work/repo", "linux"), undefined);
        assert.equal(insideFolders(["/work/repository/bin/python"], folders, "/work/repo", "linux"), undefined);
        assert.equal(insideFolders(["/usr/bin/python3"], folders, undefined, "linux"), undefined);
        assert.equal(insideFolders(["C:\\Work\\Repo\\.venv\\Scripts\\python.exe"], ["c:\\work\\repo"], undefined, "win32"), "C:\\Work\\Repo\\.venv\\Scripts\\python.exe");
    });

    it("falls back to the platform's Python", () => {
        assert.deepEqual(serverCommandLine(noArgs, undefined, "linux"), {
            command: "python3",
            args: ["-c", SERVER_BOOTSTRAP, "serve"],
            source: "default",
            passedOver: "",
        });
        assert.equal(serverCommandLine(noArgs, [], "darwin").command, "python3");
        assert.equal(serverCommandLine(noArgs, undefined, "win32").command, "python");
    });
});

describe("changeNeedsRestart", () => {
    const affecting =
        (...changed: string[]) =>
        (section: string): boolean =>
            changed.some((key) => key === section || key.startsWith(`${section}.`));

    it("restarts for server and launch settings", () => {
        assert.equal(changeNeedsRestart(affecting("lspVerify.k")), true);
        assert.equal(changeNeedsRestart(affecting("lspVerify.interpreter")), true);
        assert.equal(changeNeedsRestart(affecting("lspVerify.modelPath", "editor.fontSize")), true);
    });

    it("does not restart for trace alone or for other extensions' settings", () => {
        assert.equal(changeNeedsRestart(affecting("lspVerify.trace.server")), false);
        assert.equal(changeNeedsRestart(affecting("python.defaultInterpreterPath")), false);
    });
});

describe("commands", () => {
    it("verifyAndApply takes one {uri, line} argument", () => {
        assert.deepEqual(verifyArguments("file:///a/b.py", 12), [{ uri: "file:///a/b.py", line: 12 }]);
    });

    it("covers every server command while no server runs", () => {
        assert.deepEqual(
            commandsToCover(undefined).map((entry) => entry.command),
            [COMMANDS.verifyAndApply, COMMANDS.showReport],
        );
        assert.ok(commandsToCover(undefined).every((entry) => entry.reason === "server-not-running"));
    });

    it("covers only the commands a running server does not list, so ids are never registered twice", () => {
        assert.deepEqual(commandsToCover([...SERVER_COMMANDS, "lsp-verify.somethingElse"]), []);
        assert.deepEqual(commandsToCover([COMMANDS.verifyAndApply]), [
            { command: COMMANDS.showReport, reason: "not-provided-by-server" },
        ]);
    });

    it("turns the server's {applied, message} answer into what the user is told", () => {
        assert.deepEqual(verifyOutcomeMessage({ applied: true, message: "applied 1 of 8 candidates" }), {
            applied: true,
            text: "applied 1 of 8 candidates",
        });
        assert.deepEqual(verifyOutcomeMessage({ applied: false, message: "no candidate passed mypy" }), {
            applied: false,
            text: "no candidate passed mypy",
        });
        assert.equal(verifyOutcomeMessage({ applied: true, message: "" }), undefined);
        assert.equal(verifyOutcomeMessage(null), undefined);
        assert.equal(verifyOutcomeMessage("done"), undefined);
    });

    it("uses the configuration section as the client id", () => {
        assert.equal(SECTION, "lspVerify");
    });
});
