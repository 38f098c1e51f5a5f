/**
 * What the extension sends to the server and how it starts it, computed from configuration values.
 *
 * Nothing here imports `vscode`: the extension passes in a reader over `workspace.getConfiguration`,
 * and the unit tests pass in plain objects. Values are forwarded as the user wrote them; the server
 * validates them (and reports bad ones with window/showMessage), so the rules live in one place.
 */

import * as path from "node:path";

/** The configuration section, also the LanguageClient id (so `lspVerify.trace.server` works). */
export const SECTION = "lspVerify";

export const COMMANDS = {
    verifyAndApply: "lsp-verify.verifyAndApply",
    showReport: "lsp-verify.showReport",
    restart: "lsp-verify.restart",
} as const;

/** Commands the server implements (workspace/executeCommand); `restart` is the client's own. */
export const SERVER_COMMANDS: readonly string[] = [COMMANDS.verifyAndApply, COMMANDS.showReport];

/** Settings the server reads, from initializationOptions and from workspace/configuration. */
export const SERVER_KEYS = [
    "modelPath",
    "python",
    "k",
    "maxTokens",
    "nGpuLayers",
    "testTimeoutS",
    "requireTests",
    "repairRounds",
    "quorum",
    "probeInputs",
    "questions",
    "answersAs",
    "temperature",
    "seed",
    "promptFormat",
    "checkOnSave",
    "inlineCompletion",
    "prepareAhead",
    "engine",
    "endpoint",
    "remoteModel",
    "apiKeyEnv",
    "remoteTimeoutS",
] as const;

/** String settings whose empty value in the settings UI means "not set" (the server's default). */
const EMPTY_MEANS_UNSET: ReadonlySet<string> = new Set(["modelPath", "python", "endpoint", "remoteModel", "apiKeyEnv"]);

/** Settings only the client uses: how to start the server. */
export const LAUNCH_KEYS = ["interpreter", "serverArgs"] as const;

/**
 * Reads one key of the `lspVerify` section; `undefined` when the user has not set it anywhere.
 *
 * Only values the user set are forwarded: sending VS Code's defaults would hide the project's
 * `[tool.lsp-verify]` table, which the server ranks below the editor's values.
 */
export type SettingReader = (key: string) => unknown;

export type ServerSettings = Partial<Record<(typeof SERVER_KEYS)[number], unknown>>;

/** The answer to workspace/configuration for the `lspVerify` section: the server keys the user set. */
export function serverSettings(read: SettingReader): ServerSettings {
    const settings: ServerSettings = {};
    for (const key of SERVER_KEYS) {
        const value = read(key);
        // An empty model path in the settings UI means "the embedded default", as an unset one does.
        if (value === undefined || (EMPTY_MEANS_UNSET.has(key) && value === "")) {
            continue;
        }
        settings[key] = value;
    }
    return settings;
}

/**
 * initializationOptions: the settings plus whether VS Code trusts the workspace. Trust travels only here;
 * the server ignores (and warns about) `trusted` anywhere else, since a repository cannot trust itself.
 */
export function initializationOptions(read: SettingReader, trusted: boolean): ServerSettings & { trusted: boolean } {
    return { trusted, ...serverSettings(read) };
}

/** Where `${...}` variables in launch settings get their values. */
export interface Variables {
    workspaceFolder: string | undefined;
    userHome: string;
    env: Readonly<Record<string, string | undefined>>;
}

/** Expands `${workspaceFolder}`, `${userHome}`, `${env:NAME}` and a leading `~/`; unknown ones stay as written. */
export function expandVariables(value: string, vars: Variables): string {
    const expanded = value.replace(/\$\{([^}]+)\}/g, (whole, name: string) => {
        if (name === "workspaceFolder") {
            return vars.workspaceFolder ?? whole;
        }
        if (name === "userHome") {
            return vars.userHome;
        }
        if (name.startsWith("env:")) {
            return vars.env[name.slice("env:".length)] ?? "";
        }
        return whole;
    });
    if (expanded === "~" || expanded.startsWith("~/")) {
        return vars.userHome + expanded.slice(1);
    }
    return expanded;
}

export interface LaunchSettings {
    /** Empty: ask the Python extension, else the platform's default Python. */
    interpreter: string[];
    serverArgs: string[];
    /** Messages for values that were ignored, ready to show to the user. */
    problems: string[];
}

export function launchSettings(read: SettingReader, vars: Variables): LaunchSettings {
    const problems: string[] = [];
    const stringList = (key: string): string[] => {
        const value = read(key);
        if (value === undefined) {
            return [];
        }
        if (!Array.isArray(value) || !value.every((item): item is string => typeof item === "string")) {
            problems.push(`${SECTION}.${key} must be a list of strings; ignoring ${JSON.stringify(value)}`);
            return [];
        }
        return value.map((item) => expandVariables(item, vars));
    };
    const interpreter = stringList("interpreter");
    if (interpreter.length > 0 && interpreter[0]?.trim() === "") {
        problems.push(`${SECTION}.interpreter starts with an empty program name; ignoring it`);
        interpreter.length = 0;
    }
    return { interpreter, serverArgs: stringList("serverArgs"), problems };
}

export type InterpreterSource = "setting" | "python-extension" | "default";

export interface ServerCommandLine {
    command: string;
    args: string[];
    source: InterpreterSource;
    /** Why the Python extension's interpreter was passed over (empty: it was not). */
    passedOver: string;
}

/** The workspace the server is started for: whether it is trusted, its folders, the server's cwd. */
export interface LaunchWorkspace {
    trusted: boolean;
    folders: readonly string[];
    cwd: string | undefined;
}

/**
 * What the interpreter runs: `python -c` with the current directory taken off `sys.path` before anything is
 * imported. `python -m lsp_verify` would put the server's cwd - the workspace - first on `sys.path`, so a
 * repository holding an `lsp_verify/` (or `pygls/`) package would run its own code as the server before
 * any trust decision was made.
 */
export const SERVER_BOOTSTRAP = "import sys; del sys.path[0]; from lsp_verify.cli import main; sys.argv[0] = 'lsp-verify'; sys.exit(main())";

export function defaultPython(platform: string): string {
    // On Windows `python3` is often the Store's installer stub; `python` is what a real install puts on PATH.
    return platform === "win32" ? "python" : "python3";
}

/**
 * The part of an interpreter command line that lies inside one of `folders`, or undefined: the program, and
 * any other part written as a path (relative ones are taken from `cwd`, as the process would).
 */
export function insideFolders(
    command: readonly string[],
    folders: readonly string[],
    cwd: string | undefined,
    platform: string,
): string | undefined {
    const paths = platform === "win32" ? path.win32 : path.posix;
    const fold = (value: string): string => (platform === "win32" || platform === "darwin" ? value.toLowerCase() : value);
    return command.find((part) => {
        const written = paths.isAbsolute(part) || part.includes("/") || (platform === "win32" && part.includes("\\"));
        if (!written || (cwd === undefined && !paths.isAbsolute(part))) {
            return false; // a bare program name is looked up on PATH, not in the workspace
        }
        const absolute = paths.resolve(cwd ?? "", part);
        return folders.some((folder) => {
            const relative = paths.relative(fold(folder), fold(absolute));
            return relative === "" || (!relative.startsWith("..") && !paths.isAbsolute(relative));
        });
    });
}

/**
 * The process that runs the server: the interpreter setting wins, then the Python extension's
 * interpreter for the workspace, then the platform's default Python.
 *
 * In a workspace that is not trusted, the Python extension's interpreter is passed over when it lies
 * inside the workspace: the repository would pick the program that runs the server before any trust
 * decision - a `.venv` it ships runs its own `.pth` files at start-up, and its `bin/python` may be any
 * program. (The interpreter setting a workspace gives is already left out there: it is a restricted
 * configuration.)
 */
export function serverCommandLine(
    launch: Pick<LaunchSettings, "interpreter" | "serverArgs">,
    pythonExtensionCommand: readonly string[] | undefined,
    platform: string,
    workspace: LaunchWorkspace = { trusted: true, folders: [], cwd: undefined },
): ServerCommandLine {
    const extension = launch.interpreter.length === 0 && pythonExtensionCommand !== undefined ? pythonExtensionCommand : [];
    const inside = workspace.trusted ? undefined : insideFolders(extension, workspace.folders, workspace.cwd, platform);
    const passedOver =
        inside === undefined
            ? ""
            : `not starting the Python extension's interpreter (${extension.join(" ")}): ` +
              `${inside} lies inside the workspace, which is not trusted; trust the workspace to use it`;
    let source: InterpreterSource;
    let interpreter: readonly string[];
    if (launch.interpreter.length > 0) {
        source = "setting";
        interpreter = launch.interpreter;
    } else if (extension.length > 0 && inside === undefined) {
        source = "python-extension";
        interpreter = extension;
    } else {
        source = "default";
        interpreter = [defaultPython(platform)];
    }
    const [command = defaultPython(platform), ...prefix] = interpreter;
    return {
        command,
        args: [...prefix, "-c", SERVER_BOOTSTRAP, "serve", ...launch.serverArgs],
        source,
        passedOver,
    };
}

/**
 * Whether a configuration change needs a new server process. `affects` is
 * `ConfigurationChangeEvent.affectsConfiguration`. `trace.server` alone does not: the client library
 * applies it to the running connection.
 */
export function changeNeedsRestart(affects: (section: string) => boolean): boolean {
    if (!affects(SECTION)) {
        return false;
    }
    return [...SERVER_KEYS, ...LAUNCH_KEYS].some((key) => affects(`${SECTION}.${key}`));
}

/** The single argument of `lsp-verify.verifyAndApply`: the document and the 0-based cursor line. */
export interface VerifyTarget {
    uri: string;
    line: number;
}

export function verifyArguments(uri: string, line: number): [VerifyTarget] {
    return [{ uri, line }];
}

export type MissingCommandReason = "server-not-running" | "not-provided-by-server";

/**
 * Server commands that the client library will not register, so the extension must answer them itself
 * (with an explanation) rather than leave VS Code to say "command not found".
 *
 * The library registers every command the server lists in `executeCommandProvider` while it runs;
 * registering the same id twice throws, so the extension only fills the gaps.
 * `advertised` is undefined when no server is running.
 */
export function commandsToCover(
    advertised: readonly string[] | undefined,
): { command: string; reason: MissingCommandReason }[] {
    if (advertised === undefined) {
        return SERVER_COMMANDS.map((command) => ({ command, reason: "server-not-running" }));
    }
    return SERVER_COMMANDS.filter((command) => !advertised.includes(command)).map((command) => ({
        command,
        reason: "not-provided-by-server",
    }));
}

/** What the user is told after `lsp-verify.verifyAndApply`; the server answers `{applied, message}`. */
export function verifyOutcomeMessage(result: unknown): { applied: boolean; text: string } | undefined {
    if (typeof result !== "object" || result === null) {
        return undefined;
    }
    const { applied, message } = result as { applied?: unknown; message?: unknown };
    if (typeof message !== "string" || message.trim() === "") {
        return undefined;
    }
    return { applied: applied === true, text: message };
}
