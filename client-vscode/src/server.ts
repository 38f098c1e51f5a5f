/**
 * One lsp-verify server for the window: starting, stopping and restarting it, and the two commands it
 * implements as the user sees them.
 *
 * The client library registers a VS Code command for every command the server lists in
 * `executeCommandProvider`, so `lsp-verify.verifyAndApply` and `lsp-verify.showReport` are the library's
 * while the server runs; the `executeCommand` middleware fills in the cursor position and shows the
 * result. While no server runs (or one that lacks a command), the extension registers those ids itself,
 * to say why instead of "command not found".
 */
import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";
import {
    ExecuteCommandRequest,
    LanguageClient,
    type LanguageClientOptions,
    type Middleware,
    ResponseError,
    RevealOutputChannelOn,
    type ServerOptions,
    State,
    TransportKind,
} from "vscode-languageclient/node";

import { registerAskValue } from "./ask";
import type { PythonInterpreters } from "./python";
import { CoalescingRunner } from "./serial";
import { VerifyingStatus } from "./status";
import {
    COMMANDS,
    commandsToCover,
    launchSettings,
    type MissingCommandReason,
    SECTION,
    type SettingReader,
    serverCommandLine,
    initializationOptions,
    serverSettings,
    verifyArguments,
    verifyOutcomeMessage,
} from "./settings";

/** How long a stopping server gets to answer shutdown/exit before it is left behind. */
const STOP_TIMEOUT_MS = 2000;

type SendCommand = (args: unknown[]) => Promise<unknown>;

export class VerifyServer implements vscode.Disposable {
    private client: LanguageClient | undefined;
    private readonly restarts = new CoalescingRunner(() => this.replaceClient());
    private ownCommands: vscode.Disposable[] = [];
    private stateListener: vscode.Disposable | undefined;
    /** The status-bar item while the server verifies, and its link to the running client. */
    private readonly status = new VerifyingStatus();
    private statusAttachment: vscode.Disposable | undefined;
    /** Counts window/showDocument requests from the server; see showReport. */
    private documentsShownByServer = 0;
    private disposed = false;

    constructor(
        private readonly log: vscode.LogOutputChannel,
        private readonly interpreters: PythonInterpreters,
    ) {}

    /** Stops the running server (if any) and starts one from the current settings. */
    restart(reason: string): Promise<void> {
        this.log.info(`(re)starting the server: ${reason}`);
        return this.restarts.run().catch((error: unknown) => {
            this.log.error(`restart failed: ${errorMessage(error)}`);
        });
    }

    async stop(): Promise<void> {
        this.disposed = true;
        await this.restarts.idle();
        await this.stopClient();
        this.setOwnCommands([]);
    }

    dispose(): void {
        void this.stop().finally(() => this.status.dispose());
    }

    private async replaceClient(): Promise<void> {
        await this.stopClient();
        if (this.disposed) {
            return;
        }
        const client = await this.createClient();
        this.setOwnCommands([]);
        this.client = client;
        this.stateListener = client.onDidChangeState((event) => {
            if (event.newState === State.Stopped) {
                // The library clears its own command registrations right after announcing the state,
                // and may start again at once after a crash: look again once both have happened.
                setTimeout(() => {
                    if (this.client === client && client.state === State.Stopped) {
                        this.setOwnCommands(commandsToCover(undefined));
                    }
                }, 0);
            }
        });
        try {
            await client.start();
        } catch (error) {
            this.log.error(`the server did not start: ${errorMessage(error)}`);
            this.setOwnCommands(commandsToCover(undefined));
            return;
        }
        this.statusAttachment = this.status.attach(client);
        const advertised = client.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
        this.setOwnCommands(commandsToCover(advertised));
    }

    private async stopClient(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        this.stateListener?.dispose();
        this.stateListener = undefined;
        this.statusAttachment?.dispose();
        this.statusAttachment = undefined;
        if (client === undefined) {
            return;
        }
        if (client.state === State.Starting) {
            // The library restarting a crashed server: stop() refuses a client that is starting, and
            // start() returns the start in progress, so wait for that to end first.
            await client.start().catch(() => undefined);
        }
        try {
            // stop() rejects for a client that never got running; that is the state we want anyway.
            if (client.state !== State.Stopped) {
                await client.stop(STOP_TIMEOUT_MS);
            }
        } catch (error) {
            this.log.warn(`stopping the server: ${errorMessage(error)}`);
        }
        try {
            await client.dispose(STOP_TIMEOUT_MS);
        } catch {
            // Already stopped; dispose only releases the client's remaining resources.
        }
        this.setOwnCommands(commandsToCover(undefined));
    }

    private async createClient(): Promise<LanguageClient> {
        const folder = vscode.workspace.workspaceFolders?.[0];
        const resource = folder?.uri ?? vscode.window.activeTextEditor?.document.uri;
        const launch = launchSettings(settingReader(resource), {
            workspaceFolder: folder?.uri.fsPath,
            userHome: os.homedir(),
            env: process.env,
        });
        for (const problem of launch.problems) {
            this.log.warn(problem);
            void vscode.window.showWarningMessage(`lsp-verify: ${problem}`);
        }
        const cwd = folder?.uri.fsPath ?? (resource?.scheme === "file" ? path.dirname(resource.fsPath) : undefined);
        const commandLine = serverCommandLine(
            launch,
            launch.interpreter.length > 0 ? undefined : await this.interpreters.commandFor(resource),
            process.platform,
            {
                trusted: vscode.workspace.isTrusted,
                folders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
                cwd,
            },
        );
        if (commandLine.passedOver !== "") {
            this.log.warn(commandLine.passedOver);
        }
        this.log.info(
            `server: ${[commandLine.command, ...commandLine.args].join(" ")} ` +
                `(interpreter from ${commandLine.source}; cwd ${cwd ?? "inherited"}; ` +
                `workspace ${vscode.workspace.isTrusted ? "trusted" : "not trusted"})`,
        );

        const serverOptions: ServerOptions = {
            command: commandLine.command,
            args: commandLine.args,
            transport: TransportKind.stdio,
            options: cwd === undefined ? {} : { cwd },
        };
        const clientOptions: LanguageClientOptions = {
            documentSelector: [{ scheme: "file", language: "python" }],
            outputChannel: this.log,
            // Command failures get their own specific message below; code-action failures stay in the log.
            revealOutputChannelOn: RevealOutputChannelOn.Never,
            initializationOptions: initializationOptions(settingReader(resource), vscode.workspace.isTrusted),
            middleware: this.middleware(),
        };
        const client = new LanguageClient(SECTION, "lsp-verify", serverOptions, clientOptions);
        registerAskValue(client);
        return client;
    }

    private middleware(): Middleware {
        return {
            executeCommand: (command, args, next) => {
                const send: SendCommand = async (commandArgs) => next(command, commandArgs);
                switch (command) {
                    case COMMANDS.verifyAndApply:
                        return this.verifyAndApply(args, send);
                    case COMMANDS.showReport:
                        return this.showReport(send);
                    default:
                        return next(command, args);
                }
            },
            window: {
                showDocument: async (params, token, next) => {
                    this.documentsShownByServer += 1;
                    const result = await next(params, token);
                    if (result instanceof ResponseError) {
                        throw result;
                    }
                    return result;
                },
            },
            workspace: {
                // The library answers with the whole section, VS Code's defaults and the client-only
                // keys included: the server would warn about the client-only keys, and the defaults would
                // hide the project's [tool.lsp-verify] values, which rank below the editor's.
                configuration: async (params, token, next) => {
                    const answer = await next(params, token);
                    if (!Array.isArray(answer)) {
                        return answer;
                    }
                    return params.items.map((item, index) => {
                        if (item.section !== SECTION) {
                            return answer[index];
                        }
                        const scope =
                            item.scopeUri === undefined ? undefined : this.client?.protocol2CodeConverter.asUri(item.scopeUri);
                        return serverSettings(settingReader(scope));
                    });
                },
            },
        };
    }

    private async verifyAndApply(args: unknown[], send: SendCommand): Promise<unknown> {
        if (args.length === 0) {
            // From the command palette, a keybinding or the context menu: verify at the cursor.
            const editor = vscode.window.activeTextEditor;
            if (editor === undefined || editor.document.languageId !== "python") {
                void vscode.window.showInformationMessage(
                    "lsp-verify: put the cursor in a Python function, then run Verify and apply again.",
                );
                return undefined;
            }
            if (editor.document.uri.scheme !== "file") {
                void vscode.window.showInformationMessage("lsp-verify: save the file first; it works on files on disk.");
                return undefined;
            }
            const uri = this.client?.code2ProtocolConverter.asUri(editor.document.uri) ?? editor.document.uri.toString();
            args = verifyArguments(uri, editor.selection.active.line);
        }
        try {
            const result = await send(args);
            const outcome = verifyOutcomeMessage(result);
            if (outcome?.applied === true) {
                void vscode.window.showInformationMessage(`lsp-verify: ${outcome.text}`);
            } else if (outcome !== undefined) {
                // The server has already warned (window/showMessage) where nothing passed; no second popup.
                this.log.info(`Verify and apply: nothing applied: ${outcome.text}`);
            }
            return result;
        } catch (error) {
            this.reportCommandFailure("Verify and apply", error);
            return undefined;
        }
    }

    private async showReport(send: SendCommand): Promise<unknown> {
        const shownBefore = this.documentsShownByServer;
        let report: unknown;
        try {
            report = await send([]);
        } catch (error) {
            this.reportCommandFailure("Show report", error);
            return undefined;
        }
        // null: nothing has run yet, and the server has said so itself (window/showMessage).
        // A server that can ask the editor to show a document opens the report as a file itself, which
        // arrives before its answer; a second, untitled copy would only ask to be saved on close.
        if (typeof report !== "string" || report.trim() === "" || this.documentsShownByServer !== shownBefore) {
            return report;
        }
        const document = await vscode.workspace.openTextDocument({ language: "markdown", content: report });
        await vscode.window.showTextDocument(document, { preview: false });
        return report;
    }

    private reportCommandFailure(what: string, error: unknown): void {
        if (error instanceof vscode.CancellationError) {
            return; // The user cancelled it from the progress notification.
        }
        this.log.error(`${what} failed: ${errorMessage(error)}`);
        void vscode.window
            .showErrorMessage(`lsp-verify: ${what} failed: ${errorMessage(error)}`, "Show log")
            .then((choice) => choice === "Show log" && this.log.show());
    }

    /** Registers the server command ids the library is not registering now (see the module docstring). */
    private setOwnCommands(missing: { command: string; reason: MissingCommandReason }[]): void {
        for (const registration of this.ownCommands) {
            registration.dispose();
        }
        this.ownCommands = [];
        if (this.disposed) {
            return;
        }
        for (const { command, reason } of missing) {
            this.ownCommands.push(
                vscode.commands.registerCommand(command, (...args: unknown[]) => this.runMissing(command, reason, args)),
            );
        }
    }

    private async runMissing(command: string, reason: MissingCommandReason, args: unknown[]): Promise<unknown> {
        const client = this.client;
        if (reason === "not-provided-by-server" && client?.isRunning()) {
            // Try anyway (a server may handle commands it does not list), and say so if it cannot.
            const send: SendCommand = (commandArgs) =>
                client.sendRequest(ExecuteCommandRequest.type, { command, arguments: commandArgs });
            this.log.warn(`the server does not list ${command}; is the installed lsp-verify older than the extension?`);
            return command === COMMANDS.showReport ? this.showReport(send) : this.verifyAndApply(args, send);
        }
        const choice = await vscode.window.showErrorMessage(
            "lsp-verify: the server is not running. The log says why (often: lsp-verify is not installed in " +
                "the selected Python interpreter, see the lspVerify.interpreter setting).",
            "Show log",
            "Restart server",
        );
        if (choice === "Show log") {
            this.log.show();
        } else if (choice === "Restart server") {
            await vscode.commands.executeCommand(COMMANDS.restart);
        }
        return undefined;
    }
}

/**
 * A reader over the `lspVerify` section for `resource` that reports only values the user set
 * (in user, workspace or folder settings), so unset keys fall back to the project's pyproject.toml.
 */
function settingReader(resource: vscode.Uri | undefined): SettingReader {
    const config = vscode.workspace.getConfiguration(SECTION, resource);
    return (key) => {
        const inspected = config.inspect(key);
        if (inspected === undefined) {
            return undefined;
        }
        const setSomewhere = [inspected.globalValue, inspected.workspaceValue, inspected.workspaceFolderValue].some(
            (value) => value !== undefined,
        );
        // get() rather than the inspected values: in an untrusted workspace it leaves out the workspace's
        // values of restricted settings (interpreter, serverArgs, modelPath).
        return setSomewhere ? config.get(key) : undefined;
    };
}

function errorMessage(error: unknown): string {
    return error instanceof Error ? error.message : String(error);
}
