import Hummingbird
import SluiceConfig
import SluiceCore
import SluiceQueue
import SluiceStorage
import Foundation
import HTTPTypes

/// Handlers for uploads, submissions, status, rejects and cancellation.
struct BulkController: Sendable {
    let deps: APIDependencies
    var store: UploadStore { UploadStore(dir: deps.config.uploadDir, maxBytes: deps.config.server.maxBodyBytes, now: deps.now) }

    // MARK: Helpers

    /// The entity named in the path; only entities declared in the configuration exist.
    func entity(_ ctx: BasicRequestContext) throws -> String {
        let name = ctx.parameters.get("entity") ?? ""
        guard deps.config.entity(name) != nil else {
            throw APIError(.notFound, "unknown entity '\(SourceLocation.excerpt(name))'\(Suggestion.hint(for: name, in: deps.config.entities.keys))")
        }
        return name
    }

    func jobID(_ ctx: BasicRequestContext) throws -> Int64 {
        guard let raw = ctx.parameters.get("id"), let id = Int64(raw), id > 0 else { throw APIError(.notFound, "no such job") }
        return id
    }

    /// The job `id` of `entity`, or 404 (also when it belongs to another entity).
    func job(_ entity: String, _ id: Int64) async throws -> Job {
        guard let j = try await deps.driver.job(id: id), j.entity == entity else { throw APIError(.notFound, "no job \(id) for entity '\(entity)'") }
        return j
    }

    func checkSize(_ req: Request) throws {
        if let len = req.headers[.contentLength].flatMap({ Int64($0) }), len > deps.config.server.maxBodyBytes {
            throw APIError(.contentTooLarge, "the body is larger than \(deps.config.server.maxBodyBytes) bytes")
        }
    }

    static func format(contentType: String?) -> SourceFormat? {
        guard let ct = contentType?.lowercased().split(separator: ";").first?.trimmingCharacters(in: .whitespaces) else { return nil }
        switch ct {
        case "text/csv", "application/csv", "text/tab-separated-values": return .csv
        case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines", "application/x-jsonlines": return .ndjson
        case "application/json": return .json
        case "application/vnd.apache.parquet", "application/x-parquet", "application/parquet": return .parquet
        case "avro/binary", "application/avro", "application/vnd.apache.avro+binary", "application/x-avro": return .avro
        default: return nil
        }
    }

    /// Job options given as query parameters or form fields.
    struct Options {
        var format: SourceFormat?
        var mode: WriteMode?
        var atomic = false
        var maxRejects: Int64?
        var force = false
        var priority = 0
        var chunkBytes: Int64?

        init(_ get: (String) -> String?) throws {
            if let f = get("format") {
                guard let v = SourceFormat(rawValue: f) else { throw APIError(.badRequest, "format must be csv, ndjson, json, parquet or avro") }
                format = v
            }
            if let m = get("mode") {
                guard let v = WriteMode(rawValue: m) else { throw APIError(.badRequest, "mode must be merge, append or replace") }
                mode = v
            }
            if let a = get("atomic") {
                guard let v = Bool(a.lowercased()) else { throw APIError(.badRequest, "atomic must be true or false") }
                atomic = v
            }
            if let m = get("max_rejects") {
                guard let v = Int64(m), v >= 0 else { throw APIError(.badRequest, "max_rejects must be a non-negative integer") }
                maxRejects = v
            }
            if let f = get("force") {
                guard let v = Bool(f.lowercased()) else { throw APIError(.badRequest, "force must be true or false") }
                force = v
            }
            if let c = get("chunk_mb") {
                guard let v = Int64(c), v >= 0, v <= 1 << 20 else { throw APIError(.badRequest, "chunk_mb must be a number of MiB (0: never split)") }
                chunkBytes = v << 20
            }
            if let p = get("priority") {
                guard let v = Int(p), (-1000...1000).contains(v) else { throw APIError(.badRequest, "priority must be an integer in -1000...1000") }
                priority = v
            }
        }
    }

    func enqueue(_ entity: String, _ spec: JobSpec, priority: Int, idempotencyKey: String?) async throws -> (Job, Bool) {
        if let key = idempotencyKey, key.isEmpty || key.utf8.count > 200 {
            throw APIError(.badRequest, "Idempotency-Key must be 1 to 200 characters")
        }
        let result = try await deps.driver.insertJob(JobInsertParams(entity: entity, spec: spec, priority: priority,
                                                                     maxAttempts: deps.config.worker.maxAttempts,
                                                                     idempotencyKey: idempotencyKey, now: deps.now()))
        if result.existing && (result.job.entity != entity || result.job.spec.source != spec.source && !spec.source.hasPrefix("upload:")) {
            throw APIError(.conflict, "Idempotency-Key was already used for another request (job \(result.job.id))")
        }
        if !result.existing { deps.wake?.poke() }
        return (result.job, result.existing)
    }

    func accepted(_ job: Job, replay: Bool) throws -> Response {
        let view = SubmitView(id: job.id, state: job.state.rawValue, statusURL: "/\(job.entity)/_bulk/status/\(job.id)", duplicateRequest: replay ? true : nil)
        return try json(view, status: .accepted, headers: [.location: view.statusURL])
    }

    // MARK: Routes

    /// `PUT /{entity}/_bulk` with `{"url", "format", "mode", "atomic", "max_rejects", "force", "priority"}`.
    func submitURL(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let entity = try entity(ctx)
        let body = try await req.body.collect(upTo: 1 << 20)
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else {
            throw APIError(.badRequest, "the body must be a JSON object")
        }
        let known: Set<String> = ["url", "format", "mode", "atomic", "max_rejects", "force", "priority", "chunk_mb"]
        if let unknown = obj.keys.first(where: { !known.contains($0) }) { throw APIError(.badRequest, "unknown field '\(SourceLocation.excerpt(unknown))'") }
        /// The typed request; a field of the wrong type is a 400 naming it.
        struct Body: Decodable {
            var url: String
            var format: String?
            var mode: String?
            var atomic: Bool?
            var max_rejects: Int64?
            var force: Bool?
            var priority: Int?
            var chunk_mb: Int64?
        }
        let typed: Body
        do {
            typed = try JSONDecoder().decode(Body.self, from: Data(body.readableBytesView))
        } catch DecodingError.keyNotFound(let key, _) {
            throw APIError(.badRequest, "\(key.stringValue) is required")
        } catch DecodingError.typeMismatch(_, let ctx) {
            throw APIError(.badRequest, "\(ctx.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        } catch {
            throw APIError(.badRequest, "the body must be a JSON object")
        }
        let url = typed.url
        guard !url.isEmpty else { throw APIError(.badRequest, "url is required") }
        let opts = try Options { key in
            switch key {
            case "format": typed.format
            case "mode": typed.mode
            case "atomic": typed.atomic.map { String($0) }
            case "max_rejects": typed.max_rejects.map { String($0) }
            case "force": typed.force.map { String($0) }
            case "priority": typed.priority.map { String($0) }
            case "chunk_mb": typed.chunk_mb.map { String($0) }
            default: nil
            }
        }
        let ref: SourceRef
        do {
            ref = try deps.policy.validate(url)
        } catch {
            throw APIError(.badRequest, error.message)
        }
        if case .upload(let id) = ref, try await deps.driver.upload(id: id) == nil {
            throw APIError(.badRequest, "upload '\(id)' does not exist")
        }
        let spec = JobSpec(source: url, format: opts.format, mode: opts.mode, atomic: opts.atomic, maxRejects: opts.maxRejects, force: opts.force,
                           chunkBytes: opts.chunkBytes)
        let (job, replay) = try await enqueue(entity, spec, priority: opts.priority, idempotencyKey: req.headers[.idempotencyKey])
        return try accepted(job, replay: replay)
    }

    /// `POST /{entity}/_bulk` with the file as the body (or as multipart) → a job.
    func submitBody(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let entity = try entity(ctx)
        if let key = req.headers[.idempotencyKey], let existing = try await deps.driver.job(idempotencyKey: key) {
            guard existing.entity == entity else { throw APIError(.conflict, "Idempotency-Key was already used for another request (job \(existing.id))") }
            return try accepted(existing, replay: true)
        }
        try checkSize(req)
        let query = req.uri.queryParameters
        var fields: [String: String] = [:]
        var upload: Upload
        var format = Self.format(contentType: req.headers[.contentType])
        if let boundary = multipartBoundary(req.headers[.contentType]) {
            let r = try await store.storeMultipart(req.body, boundary: boundary)
            guard let u = r.upload else { throw APIError(.badRequest, "the multipart body has no file part") }
            upload = u
            fields = r.fields
            format = nil
        } else {
            upload = try await store.storeRaw(req.body, originalName: query["filename"].map(String.init))
        }
        let opts = try Options { key in query[Substring(key)].map(String.init) ?? fields[key] }
        upload = try await record(upload)
        let spec = JobSpec(source: "upload:\(upload.id)", format: opts.format ?? format ?? upload.originalName.flatMap(SourceFormat.detect(fromName:)),
                           mode: opts.mode, atomic: opts.atomic, maxRejects: opts.maxRejects, force: opts.force, fileName: upload.originalName,
                           chunkBytes: opts.chunkBytes)
        let (job, replay) = try await enqueue(entity, spec, priority: opts.priority, idempotencyKey: req.headers[.idempotencyKey])
        return try accepted(job, replay: replay)
    }

    /// `POST /uploads` (raw or multipart) → `{"upload_id", "size", "sha256"}`.
    func upload(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let upload = try await storeFile(req)
        return try json(UploadView(uploadID: upload.id, size: upload.size, sha256: upload.sha256, fileName: upload.originalName), status: .created)
    }

    /// `POST /pipelines/{name}/runs` (raw or multipart): the file runs through the declared
    /// pipeline in the background → 202 with the run's id; `GET` the same path for its state.
    func runPipeline(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let name = try pipelineName(ctx)
        guard let start = deps.runPipeline else { throw APIError(.notFound, "this server does not run pipelines") }
        // Kept in the storage when there is one: if this host dies mid-run, another replica
        // carries the run on from the same file.
        let upload = try await storeFile(req)
        let run = try await start(name, upload)
        let url = "/pipelines/\(name)/runs"
        return try json(["run_id": "\(run)", "upload_id": upload.id, "status_url": url], status: .accepted, headers: [.location: url])
    }

    /// `GET /pipelines/{name}/runs`: the pipeline's latest runs, newest first.
    func pipelineRuns(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let name = try pipelineName(ctx)
        let runs = try await deps.driver.runs(pipeline: name, limit: 50)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        enc.dateEncodingStrategy = .iso8601
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try enc.encode(["runs": runs]))))
    }

    func pipelineName(_ ctx: BasicRequestContext) throws -> String {
        guard let name = ctx.parameters.get("name"), deps.config.pipelines[name] != nil else {
            throw APIError(.notFound, "no such pipeline (declared: \(deps.config.pipelines.keys.sorted().joined(separator: ", ")))")
        }
        return name
    }

    /// Stores a request's file (raw body, named by `?filename=`, or the file part of a
    /// multipart body) and records the upload.
    func storeFile(_ req: Request) async throws -> Upload {
        try checkSize(req)
        let upload: Upload
        if let boundary = multipartBoundary(req.headers[.contentType]) {
            guard let u = try await store.storeMultipart(req.body, boundary: boundary).upload else {
                throw APIError(.badRequest, "the multipart body has no file part")
            }
            upload = u
        } else {
            upload = try await store.storeRaw(req.body, originalName: req.uri.queryParameters["filename"].map(String.init))
        }
        return try await record(upload)
    }

    /// Records an upload. With a shared storage (`storage:`) its file goes there first and
    /// leaves this host's disk, so a worker on any host can load it after the answer; a file
    /// the storage did not take is neither kept nor recorded.
    func record(_ upload: Upload) async throws -> Upload {
        var upload = upload
        if let storage = deps.policy.storage {
            let local = upload.path
            defer { unlink(local) }
            do {
                upload.path = try await storage.keep(local, folder: "uploads", name: (local as NSString).lastPathComponent)
            } catch {
                throw APIError(.serviceUnavailable, "the upload could not be kept in \(storage.url) (\(error)); send it again")
            }
        }
        try await deps.driver.insertUpload(upload)
        return upload
    }

    /// `POST /bulk_upload`, as seed 000's receiver: a multipart `file` field, answered with
    /// 200 (its client counts only 200 as success); enqueues a load when configured.
    func bulkUpload(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        try checkSize(req)
        guard let boundary = multipartBoundary(req.headers[.contentType]) else {
            throw APIError(.badRequest, "expected a multipart/form-data body with a 'file' field")
        }
        let r = try await store.storeMultipart(req.body, boundary: boundary)
        guard let stored = r.upload else { throw APIError(.badRequest, "the multipart body has no 'file' field") }
        let upload = try await record(stored)
        var view = UploadView(uploadID: upload.id, size: upload.size, sha256: upload.sha256, fileName: upload.originalName)
        if let entity = deps.config.server.bulkUploadEntity {
            let spec = JobSpec(source: "upload:\(upload.id)", format: upload.originalName.flatMap(SourceFormat.detect(fromName:)),
                               fileName: upload.originalName)
            let (job, _) = try await enqueue(entity, spec, priority: 0, idempotencyKey: req.headers[.idempotencyKey])
            view.jobID = job.id
            view.statusURL = "/\(entity)/_bulk/status/\(job.id)"
        }
        return try json(view, status: .ok)
    }

    /// `GET /{entity}/_bulk/status/{id}`.
    func status(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        try json(JobView(try await job(try entity(ctx), try jobID(ctx)), now: deps.now()))
    }

    /// `GET /{entity}/_bulk/{id}/rejects`: the rejected rows as CSV (fields, `_line`, `_error`).
    func rejects(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let j = try await job(try entity(ctx), try jobID(ctx))
        guard let path = j.result?.rejectsPath, let handle = FileHandle(forReadingAtPath: path) else {
            throw APIError(.notFound, "job \(j.id) has no rejected rows")
        }
        let body = ResponseBody { writer in
            defer { try? handle.close() }  // read-only handle
            while let chunk = try handle.read(upToCount: 64 << 10), !chunk.isEmpty {
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8"], body: body)
    }

    /// `GET /jobs?state=&entity=&after=&limit=` (keyset pagination: pass `next` as `after`).
    func list(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let q = req.uri.queryParameters
        var p = JobListParams()
        if let s = q["state"] {
            guard let st = JobState(rawValue: String(s)) else { throw APIError(.badRequest, "unknown state '\(SourceLocation.excerpt(String(s)))'") }
            p.state = st
        }
        if let e = q["entity"] { p.entity = String(e) }
        if let a = q["after"] {
            guard let v = Int64(a) else { throw APIError(.badRequest, "after must be a job id") }
            p.after = v
        }
        if let l = q["limit"] {
            guard let v = Int(l), v >= 1, v <= 1000 else { throw APIError(.badRequest, "limit must be 1 to 1000") }
            p.limit = v
        }
        let jobs = try await deps.driver.listJobs(p)
        struct Page: Encodable {
            var jobs: [JobView]
            var next: Int64?
        }
        let now = deps.now()
        return try json(Page(jobs: jobs.map { JobView($0, now: now) }, next: jobs.count == p.limit ? jobs.last?.id : nil))
    }

    /// `DELETE /{entity}/_bulk/{id}`: cancels a queued or running job (a running worker
    /// loses its lease and writes nothing).
    func cancel(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let j = try await job(try entity(ctx), try jobID(ctx))
        guard let cancelled = try await deps.driver.cancelJob(JobCancelParams(id: j.id, now: deps.now())) else {
            throw APIError(.conflict, "job \(j.id) is \(j.state.rawValue) and cannot be cancelled")
        }
        return try json(JobView(cancelled, now: deps.now()))
    }
}

extension HTTPField.Name {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
}
