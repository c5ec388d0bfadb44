import SluiceLoad
import SluiceCore
import Foundation
import SluiceExport

/// Progress on stderr: a live bar on a terminal (rows, MB/s, ETA), periodic log lines
/// otherwise, nothing with `--quiet`.
final class ProgressDisplay: LoadObserver {
    let enabled: Bool
    let tty: Bool
    var lastDraw: Double = -1
    var drewBar = false
    /// Whether a progress line was written (short loads print no phase lines either).
    var wroteAny = false

    init(enabled: Bool) {
        self.enabled = enabled
        self.tty = isatty(2) != 0
    }

    func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }

    func loadProgress(file: InputFile, index: Int, of count: Int, bytes: Int64, rows: Int64, elapsed: Double) {
        guard enabled else { return }
        let interval = tty ? 0.1 : 5.0
        guard elapsed - lastDraw >= interval else { return }
        lastDraw = elapsed
        let mb = Double(bytes) / 1_048_576
        let rate = elapsed > 0 ? mb / elapsed : 0
        let fraction = file.size > 0 ? min(1, Double(bytes) / Double(file.size)) : 0
        let eta = fraction > 0 && rate > 0 ? (Double(file.size) / 1_048_576 - mb) / rate : 0
        let name = (file.path as NSString).lastPathComponent
        let head = count > 1 ? "[\(index + 1)/\(count)] " : ""
        if tty {
            let width = 24
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            write(String(format: "\r%@%@ [%@] %3.0f%%  %@ rows  %.1f MB/s  ETA %@ ", head, name, bar, fraction * 100,
                         Self.group(rows), rate, Self.clock(eta)))
            drewBar = true
        } else {
            write(String(format: "%@%@: %@ rows, %.1f MB of %.1f MB, %.1f MB/s\n", head, name, Self.group(rows), mb,
                         Double(file.size) / 1_048_576, rate))
        }
        wroteAny = true
    }

    func loadPhase(_ phase: String) {
        guard enabled, wroteAny else { return }
        if tty { write("\r\u{1B}[K\(phase)...") ; drewBar = true } else { write("\(phase)...\n") }
    }

    func finish() {
        if enabled && tty && drewBar { write("\r\u{1B}[K") }
        drewBar = false
    }

    static func group(_ n: Int64) -> String {
        let s = String(n)
        var out = ""
        for (i, ch) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return String(out.reversed())
    }

    static func clock(_ secs: Double) -> String {
        let s = Int(secs.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// The end-of-load summary, as text or JSON.
enum Summary {
    static func text(_ r: LoadReport) -> String {
        let s = r.stats
        var lines: [String] = []
        let verb = r.rehearsed ? "dry run: would load" : r.dryRun ? "checked" : "loaded"
        lines.append("\(verb) \(r.files.count) file\(r.files.count == 1 ? "" : "s") into \(r.table) (\(r.mode.rawValue)\(r.inferred ? ", columns inferred" : "")) in \(String(format: "%.2f", r.seconds)) s")
        if r.rehearsed { lines.append("  (applied and rolled back: the counts are exact, nothing was written)") }
        lines.append("  read      \(ProgressDisplay.group(s.read))")
        if !r.dryRun || r.rehearsed {
            lines.append("  inserted  \(ProgressDisplay.group(s.inserted))")
            lines.append("  updated   \(ProgressDisplay.group(s.updated))")
            lines.append("  deleted   \(ProgressDisplay.group(s.deleted))")
            lines.append("  skipped   \(ProgressDisplay.group(s.skipped))   (superseded by a later row for the same key, or deletes of absent keys)")
        }
        lines.append("  rejected  \(ProgressDisplay.group(s.rejected))")
        for f in r.files { if let rf = f.rejectsFile { lines.append("  rejects of \(f.path): \(rf)") } }
        if !r.unusedFields.isEmpty { lines.append("  fields not loaded: \(r.unusedFields.joined(separator: ", "))") }
        if let p = r.summaryPath { lines.append("  summary: \(p)") }
        return lines.joined(separator: "\n")
    }

    static func json(_ r: LoadReport) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: enc.encode(r), as: UTF8.self)) ?? "{}"
    }
}

/// One live line on a terminal for `sluice export`: batches delivered of those known so far.
enum ProgressLine {
    static let export: @Sendable (ExportReport) -> Void = { r in
        let width = 24
        let known = max(r.planned, r.delivered + r.dead)
        let fraction = known > 0 ? Double(r.delivered + r.dead) / Double(known) : 0
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let rate = r.seconds > 0 ? Double(r.deliveredRows) / r.seconds : 0
        let line = String(format: "\r\u{1B}[K[%@] %d/%d batches  %@ rows  %@ rows/s  dead %d  attempts %d", bar, r.delivered, known,
                          ProgressDisplay.group(Int64(r.deliveredRows)), ProgressDisplay.group(Int64(rate)), r.dead, r.attempts)
        FileHandle.standardError.write(Data(line.utf8))
    }
}
