public import SluiceExport
public import SluiceConfig
import SluiceLoad
import SluiceCore
public import SluiceQueue
import Foundation

/// One run of an export: plan the rows not yet sent, deliver every planned batch (or only
/// plan), and say what is left. `sluice export` and a pipeline's `export:` sink both use it.
public enum ExportDelivery {
    public struct Outcome: Sendable {
        public var report: ExportReport
        /// Batches dead-lettered for this receiver (they stay listed by `sluice export status`).
        public var dead: Int
        /// One or two lines for people.
        public var summary: String
    }

    public static func run(_ spec: ExportSpec, store: any ExportStore, planOnly: Bool,
                           progress: (@Sendable (ExportReport) -> Void)? = nil) async throws -> Outcome {
        let exporter = try Exporter(spec: spec, store: store)
        var report = ExportReport()
        if planOnly {
            let planned = try await exporter.plan()
            report.planned = planned.batches
            report.plannedRows = planned.rows
        } else {
            exporter.onProgress = progress
            report = try await exporter.run()
            if progress != nil { FileHandle.standardError.write(Data("\n".utf8)) }
        }
        let pending = try await store.batches(spec.url).filter { $0.state != .delivered }
        let dead = pending.filter { $0.state == .dead }.count
        var summary = "planned \(report.planned) new batches (\(report.plannedRows) rows); delivered \(report.delivered) (\(report.deliveredRows) rows) in \(String(format: "%.2f", report.seconds)) s, \(report.attempts) attempts"
        if !pending.isEmpty {
            summary += "\nnot delivered: \(pending.count) batches (\(dead) dead-lettered); see `sluice export status --to \(spec.url)`"
        }
        return Outcome(report: report, dead: dead, summary: summary)
    }
}

/// An export whose source is a Delta table (`--from delta:PATH`): the snapshot is first
/// mirrored into a table of the target database (replaced whole, keyed by the export's key),
/// so the delivery ledger works as for any table and each row still goes once.
public enum DeltaExportSource {
    /// The mirror table of the table at `root`: `delta_<name>_<hash>` (a table of the user's
    /// database, visible to them; `sluice_` names are reserved for the control plane).
    public static func mirrorTable(_ root: String) -> String {
        let name = String((root as NSString).lastPathComponent.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }.prefix(30))
        var h: UInt32 = 2_166_136_261
        for b in URL(fileURLWithPath: root).standardizedFileURL.path.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return "delta_\(name)_\(String(h, radix: 16))"
    }

    /// Mirrors the Delta source of `spec`, if it has one, and points the export at the mirror.
    /// Returns the rows mirrored (nil: the source is not a Delta table).
    public static func prepare(_ spec: inout ExportSpec, config: SluiceConfig) async throws -> Int64? {
        guard let from = spec.source.table, let (root, _) = try DeltaLocation.parse(from) else { return nil }
        let mirror = mirrorTable(root)
        var request = LoadRequest(files: [from], entity: mirror)
        request.mode = .replace
        request.key = spec.source.key.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        request.table = mirror
        let report = try await Loader.load(request, config: config)
        spec.source.table = mirror
        return report.stats.inserted
    }
}
