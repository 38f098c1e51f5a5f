/**
 * Runs one async task at a time and folds requests that arrive meanwhile into a single further run.
 *
 * Restarts come in bursts (a settings file saved twice, trust granted while the interpreter changes);
 * each burst must end with exactly one server started from the latest settings, never two racing.
 */
export class CoalescingRunner {
    private running: Promise<void> | undefined;
    private queued: Promise<void> | undefined;

    constructor(private readonly task: () => Promise<void>) {}

    /** Resolves when a run that started after this call has finished (and rejects if that run failed). */
    run(): Promise<void> {
        if (this.queued !== undefined) {
            return this.queued;
        }
        if (this.running === undefined) {
            this.running = this.task().finally(() => {
                this.running = undefined;
            });
            return this.running;
        }
        this.queued = this.running
            .catch(() => undefined)
            .then(() => {
                this.queued = undefined;
                return this.run();
            });
        return this.queued;
    }

    /** Resolves once nothing is running or queued. */
    async idle(): Promise<void> {
        while (this.queued !== undefined || this.running !== undefined) {
            await (this.queued ?? this.running)?.catch(() => undefined);
        }
    }
}
