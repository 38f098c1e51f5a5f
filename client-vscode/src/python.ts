/**
 * The interpreter selected in the Python extension (ms-python.python), when that extension is installed.
 *
 * Its exports are untyped here on purpose: the extension is optional, and its API has changed shape over
 * the years, so each part is checked before use and a missing part means "no interpreter from there".
 */
import * as vscode from "vscode";

const PYTHON_EXTENSION_ID = "ms-python.python";

interface EnvironmentPath {
    path: string;
}

interface ResolvedEnvironment {
    executable: { uri?: vscode.Uri | undefined };
}

/** The parts of the Python extension's API that this extension uses. */
interface PythonExtensionApi {
    environments?: {
        getActiveEnvironmentPath(resource?: vscode.Uri): EnvironmentPath;
        resolveEnvironment(environment: EnvironmentPath | string): Promise<ResolvedEnvironment | undefined>;
        onDidChangeActiveEnvironmentPath: vscode.Event<unknown>;
    };
    settings?: {
        getExecutionDetails(resource?: vscode.Uri): { execCommand: string[] | undefined };
        onDidChangeExecutionDetails: vscode.Event<unknown>;
    };
}

export class PythonInterpreters implements vscode.Disposable {
    private readonly changed = new vscode.EventEmitter<void>();
    /** Fires when the user picks another interpreter in the Python extension. */
    readonly onDidChange = this.changed.event;
    private readonly subscriptions: vscode.Disposable[] = [this.changed];

    private constructor(
        private readonly api: PythonExtensionApi | undefined,
        private readonly log: vscode.LogOutputChannel,
    ) {
        const event = api?.environments?.onDidChangeActiveEnvironmentPath ?? api?.settings?.onDidChangeExecutionDetails;
        if (event !== undefined) {
            this.subscriptions.push(event(() => this.changed.fire()));
        }
    }

    static async connect(log: vscode.LogOutputChannel): Promise<PythonInterpreters> {
        const extension = vscode.extensions.getExtension<unknown>(PYTHON_EXTENSION_ID);
        if (extension === undefined) {
            log.info(`${PYTHON_EXTENSION_ID} is not installed; lspVerify.interpreter or python3 will be used`);
            return new PythonInterpreters(undefined, log);
        }
        try {
            const exports = extension.isActive ? extension.exports : await extension.activate();
            return new PythonInterpreters(asPythonApi(exports), log);
        } catch (error) {
            log.warn(`could not activate ${PYTHON_EXTENSION_ID}: ${String(error)}`);
            return new PythonInterpreters(undefined, log);
        }
    }

    /** The command line of the interpreter selected for `resource`, or undefined when there is none. */
    async commandFor(resource: vscode.Uri | undefined): Promise<string[] | undefined> {
        const environments = this.api?.environments;
        if (environments !== undefined) {
            try {
                const active = environments.getActiveEnvironmentPath(resource);
                const resolved = await environments.resolveEnvironment(active);
                const executable = resolved?.executable.uri?.fsPath;
                if (executable !== undefined && executable !== "") {
                    return [executable];
                }
            } catch (error) {
                this.log.warn(`Python extension could not resolve the active environment: ${String(error)}`);
            }
        }
        const settings = this.api?.settings;
        if (settings !== undefined) {
            try {
                const command = settings.getExecutionDetails(resource).execCommand;
                if (command !== undefined && command.length > 0 && command.every((part) => typeof part === "string")) {
                    return command;
                }
            } catch (error) {
                this.log.warn(`Python extension could not give execution details: ${String(error)}`);
            }
        }
        return undefined;
    }

    dispose(): void {
        for (const subscription of this.subscriptions) {
            subscription.dispose();
        }
    }
}

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null;
}

function hasFunctions(value: unknown, names: readonly string[]): boolean {
    return isObject(value) && names.every((name) => typeof value[name] === "function");
}

function asPythonApi(exports: unknown): PythonExtensionApi | undefined {
    if (!isObject(exports)) {
        return undefined;
    }
    const api: PythonExtensionApi = {};
    if (hasFunctions(exports.environments, ["getActiveEnvironmentPath", "resolveEnvironment", "onDidChangeActiveEnvironmentPath"])) {
        api.environments = exports.environments as NonNullable<PythonExtensionApi["environments"]>;
    }
    if (hasFunctions(exports.settings, ["getExecutionDetails", "onDidChangeExecutionDetails"])) {
        api.settings = exports.settings as NonNullable<PythonExtensionApi["settings"]>;
    }
    return api;
}
