public import SluiceExport
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
