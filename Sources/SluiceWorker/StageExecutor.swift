import SluiceCore
import SluiceQueue
import SluiceConfig
import SluiceLoad
import SluiceStorage
import Foundation
import Synchronization

/// Pipelines over the queue: one job per stage and batch. `extract` reads a source file and
/// hands its rows on in batches; each `enrich` job runs one enrich step over one batch and
/// hands the result on; `load` writes one batch, completing its job in the data transaction.
/// A hand-off stores the batch and queues its consumer in one transaction, under a key made
/// of the producing job's identity, so a retried job re-cuts the same batches and each is
/// queued once: every batch goes through every stage exactly once in effect.
extension JobExecutor {
    /// Job priorities: later stages first, so a run drains before it reads more.
    static func priority(_ kind: StageKind, step: Int = 0) -> Int {
        switch kind {
        case .extract: 0
        case .enrich: 1 + step
        case .load: 100
        }
    }

    func stageAttempt(_ job: Job, _ stage: StageSpec, _ lease: Lease, dir: String) async -> Outcome {
        guard let pipeline = config.pipelines[stage.pipeline] else {
            return .failed(SluiceError(.invalidConfig, "job \(job.id) is a stage of pipeline '\(stage.pipeline)', which this worker's sluice.yml does not declare"))
        }
        do throws(SluiceError) {
            var runner = try PipelineRunner(pipeline: pipeline)
            runner.batchRows = pipeline.batchRows
            try createDirectory(dir)
            // Rows the steps reject: this job's part of the run's rejects file (a retry rewrites it).
            let rejects = StepRejectLog(path: StepRejectLog.jobPart(pipeline.name, run: stage.run, job: job.id, stateDir: config.stateDir))
            runner.rejectLog = rejects
            defer { try? rejects.close() }
            func done(_ r: JobResult) throws(SluiceError) -> Outcome {
                try rejects.close()
                var r = r
                if rejects.count > 0 { r.rejectsPath = rejects.path }
                return .completed(r)
            }
            switch stage.kind {
            case .extract: return try done(try await extract(job, stage, pipeline, &runner, lease, dir: dir))
            case .enrich: return try done(try await enrich(job, stage, pipeline, &runner, lease))
            case .load:
                let items = try await input(stage)
                var j = job
                j.spec.force = true
                let feed = RowFeed.complete(name: "batch \(stage.input ?? "") of pipeline \(stage.pipeline)", fields: runner.header, rows: items.map(\.row))
                let input = LoadInput(job: j, local: LocalSource(path: feed.name, sha256: "", size: 0, temporary: true), dir: dir, feed: feed)
                return await load(input, lease)
            }
        } catch {
            return .failed(error)
        }
    }

    /// The rows a stage job consumes.
    func input(_ stage: StageSpec) async throws(SluiceError) -> [StageBatch.Item] {
        guard let key = stage.input, let text = try await driver.stageBatch(key: key) else {
            throw SluiceError(.notFound, "the batch \(stage.input ?? "?") of run \(stage.run) is gone (was the run's data dropped?)")
        }
        return try StageBatch.decode(text, name: "batch \(key)")
    }

    /// Stores `items` as batch `key` and queues the stage that consumes them.
    func handOff(_ items: [StageBatch.Item], key: String, from job: Job, stage: StageSpec, pipeline: Pipeline, enrichSteps: Int) async throws(SluiceError) {
        let nextStep = stage.kind == .extract ? 0 : stage.step + 1
        let kind: StageKind = nextStep < enrichSteps ? .enrich : .load
        var spec = JobSpec(source: "batch:\(key)", mode: pipeline.mode, force: true, fileName: job.spec.fileName)
        spec.stage = StageSpec(pipeline: pipeline.name, run: stage.run, kind: kind, step: kind == .enrich ? nextStep : 0, input: key)
        let next = JobInsertParams(entity: job.entity, spec: spec, priority: Self.priority(kind, step: nextStep),
                                   maxAttempts: pipeline.maxAttempts, now: now())
        _ = try await driver.handOff(StageHandOffParams(key: key, payload: StageBatch.encode(items), job: next))
    }

    func extract(_ job: Job, _ stage: StageSpec, _ pipeline: Pipeline, _ runner: inout PipelineRunner, _ lease: Lease, dir: String) async throws(SluiceError) -> JobResult {
        let source = try PipelineSource(pipeline, s3: config.s3)
        let file: Source.LocalFile
        do {
            file = try await source.fetch(PipelineSource.File(key: stage.key, etag: stage.etag), into: dir)
        } catch where error.code == .aborted {
            // Not a lost lease: the object was replaced after the run listed it.
            throw SluiceError(.invalidInput, "\(error.message); the next run reads the new version", at: error.location)
        }
        defer { if file.temporary { try? FileManager.default.removeItem(atPath: file.path) } }
        var k = 0
        let enrichSteps = runner.enrichCount
        let r = try await runner.extract(file: file.path, displayName: file.name) { (batch) throws(SluiceError) in
            guard lease.held else { throw SluiceError(.aborted, "the lease was lost") }
            try await handOff(batch, key: "run-\(stage.run)/job-\(job.id)/batch-\(k)", from: job, stage: stage, pipeline: pipeline, enrichSteps: enrichSteps)
            k += 1
            lease.rows.add(Int64(batch.count), ordering: .relaxed)
        }
        let (stats, rejects) = r.jobStats()
        return JobResult(stats: stats, rejects: rejects)
    }

    func enrich(_ job: Job, _ stage: StageSpec, _ pipeline: Pipeline, _ runner: inout PipelineRunner, _ lease: Lease) async throws(SluiceError) -> JobResult {
        let items = try await input(stage)
        var r = PipelineRunner.FileResult()
        let out = try await runner.afterEnrich(step: stage.step, items, env: QueueEnrichEnvironment(driver: driver), result: &r)
        guard lease.held else { throw SluiceError(.aborted, "the lease was lost") }
        if !out.isEmpty, let key = stage.input {
            try await handOff(out, key: "\(key)/enrich-\(stage.step)", from: job, stage: stage, pipeline: pipeline, enrichSteps: runner.enrichCount)
        }
        lease.rows.store(Int64(items.count), ordering: .relaxed)
        r.read = items.count
        let (stats, rejects) = r.jobStats()
        return JobResult(stats: stats, rejects: rejects)
    }
}
