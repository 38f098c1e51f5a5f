/**
 * What the status-bar item says while the server verifies (a check on save, an inline completion, a code
 * action): computed from the server's running work-done progresses. Nothing here imports `vscode`.
 */

/** One `$/progress` the server has begun and not yet ended. */
export interface RunningProgress {
    title: string;
    message: string | undefined;
    percentage: number | undefined;
}

export interface StatusText {
    text: string;
    tooltip: string;
}

/** The item's text and tooltip; `undefined` (hide it) when nothing runs. The newest progress is shown. */
export function statusText(running: readonly RunningProgress[]): StatusText | undefined {
    const newest = running[running.length - 1];
    if (newest === undefined) {
        return undefined;
    }
    const percent = newest.percentage === undefined ? "" : ` ${newest.percentage}%`;
    const others = running.length > 1 ? ` (+${running.length - 1} more)` : "";
    const lines = running.map((entry) => (entry.message ? `${entry.title}: ${entry.message}` : entry.title));
    return { text: `$(sync~spin) lsp-verify: verifying${percent}${others}`, tooltip: lines.join("\n") };
}

/** Applies one `$/progress` value to the running set (keyed by token); returns whether it ended. */
export function applyProgress(
    running: Map<string | number, RunningProgress>,
    token: string | number,
    value: { kind: string; title?: string; message?: string; percentage?: number },
): boolean {
    if (value.kind === "begin") {
        running.set(token, { title: value.title ?? "lsp-verify", message: value.message, percentage: value.percentage });
        return false;
    }
    if (value.kind === "report") {
        const entry = running.get(token);
        if (entry !== undefined) {
            running.set(token, {
                title: entry.title,
                message: value.message ?? entry.message,
                percentage: value.percentage ?? entry.percentage,
            });
        }
        return false;
    }
    running.delete(token);
    return true;
}
