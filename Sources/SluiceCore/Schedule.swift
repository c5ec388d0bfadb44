public import Foundation

/// A five-field cron expression (`minute hour day-of-month month day-of-week`) in a time
/// zone: `*`, lists, ranges and steps (`*/15`, `1-5`, `0,30`), month and day names
/// (`jan`, `mon`), `@hourly`, `@daily`, `@weekly`, `@monthly`. Day of month and day of week
/// combine as in cron: when both are restricted, either may match.
public struct CronSchedule: Sendable, Equatable {
    public let text: String
    let minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    let anyDay: Bool, anyWeekday: Bool
    public let timeZone: TimeZone

    public init(_ text: String, timeZone: TimeZone = TimeZone(identifier: "UTC")!) throws(SluiceError) {
        self.text = text
        self.timeZone = timeZone
        let aliases = ["@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *"]
        let fields = (aliases[text.lowercased()] ?? text).split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else { throw SluiceError(.invalidConfig, "a schedule has 5 fields (minute hour day month weekday), not \(fields.count): '\(text)'") }
        let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        minutes = try Self.field(fields[0], 0...59, "minute", names: [], offset: 0)
        hours = try Self.field(fields[1], 0...23, "hour", names: [], offset: 0)
        days = try Self.field(fields[2], 1...31, "day of month", names: [], offset: 0)
        months = try Self.field(fields[3], 1...12, "month", names: monthNames, offset: 1)
        weekdays = Set(try Self.field(fields[4], 0...7, "day of week", names: dayNames, offset: 0).map { $0 % 7 })
        anyDay = fields[2] == "*"
        anyWeekday = fields[4] == "*"
    }

    static func field(_ f: String, _ range: ClosedRange<Int>, _ what: String, names: [String], offset: Int) throws(SluiceError) -> Set<Int> {
        func value(_ s: Substring) throws(SluiceError) -> Int {
            if let i = names.firstIndex(of: s.lowercased()) { return i + offset }
            guard let v = Int(s), range.contains(v) else { throw SluiceError(.invalidConfig, "'\(s)' is not a \(what) (\(range.lowerBound)-\(range.upperBound))") }
            return v
        }
        var out = Set<Int>()
        for part in f.split(separator: ",") {
            let pieces = part.split(separator: "/", maxSplits: 1)
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s > 0 else { throw SluiceError(.invalidConfig, "'\(part)': the step must be a positive number") }
                step = s
            }
            let base = pieces[0]
            var lo = range.lowerBound, hi = range.upperBound
            if base != "*" {
                let bounds = base.split(separator: "-", maxSplits: 1)
                lo = try value(bounds[0])
                hi = bounds.count == 2 ? try value(bounds[1]) : (pieces.count == 2 ? range.upperBound : lo)
                guard lo <= hi else { throw SluiceError(.invalidConfig, "'\(part)': the range runs backwards") }
            }
            out.formUnion(stride(from: lo, through: hi, by: step))
        }
        return out
    }

    /// The first firing strictly after `date` (within 5 years), or nil.
    public func next(after date: Date) -> Date? {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = timeZone
        // Start at the next whole minute.
        var t = cal.date(bySetting: .second, value: 0, of: date.addingTimeInterval(60)) ?? date.addingTimeInterval(60)
        if t <= date { t = t.addingTimeInterval(60) }
        let limit = date.addingTimeInterval(5 * 366 * 86_400)
        while t < limit {
            let c = cal.dateComponents([.month, .day, .hour, .minute, .weekday], from: t)
            guard months.contains(c.month!) else {
                t = cal.date(byAdding: .month, value: 1, to: cal.date(from: cal.dateComponents([.year, .month], from: t))!)!
                continue
            }
            let dayOK = anyDay && anyWeekday ? true
                : anyDay ? weekdays.contains(c.weekday! - 1)
                : anyWeekday ? days.contains(c.day!)
                : days.contains(c.day!) || weekdays.contains(c.weekday! - 1)
            guard dayOK else {
                t = cal.date(byAdding: .day, value: 1, to: cal.startOfDay(for: t))!
                continue
            }
            guard hours.contains(c.hour!) else {
                t = cal.date(byAdding: .hour, value: 1, to: cal.date(from: cal.dateComponents([.year, .month, .day, .hour], from: t))!)!
                continue
            }
            if minutes.contains(c.minute!) { return t }
            t = t.addingTimeInterval(60)
        }
        return nil
    }
}

/// One run of a pipeline: when, what window of time it covers, how it ended, its figures.
public struct PipelineRun: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable { case running, succeeded, failed }
    public var id: Int64
    public var pipeline: String
    public var state: State
    /// The schedule's firing this run is for (nil for a run by hand).
    public var scheduledFor: Date?
    /// The span of time the run covers (a catch-up covers every missed firing; a backfill its window).
    public var windowFrom: Date?
    public var windowTo: Date?
    public var startedAt: Date
    public var finishedAt: Date?
    /// Counts per step and load, as JSON text.
    public var counts: String?
    public var error: String?
    /// The upload a run over a posted file reads (`POST /pipelines/NAME/runs`).
    public var upload: String?

    public init(id: Int64, pipeline: String, state: State, scheduledFor: Date?, windowFrom: Date?, windowTo: Date?, startedAt: Date,
                finishedAt: Date? = nil, counts: String? = nil, error: String? = nil, upload: String? = nil) {
        self.upload = upload
        self.id = id
        self.pipeline = pipeline
        self.state = state
        self.scheduledFor = scheduledFor
        self.windowFrom = windowFrom
        self.windowTo = windowTo
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.counts = counts
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case id, pipeline, state, counts, error, upload
        case scheduledFor = "scheduled_for", windowFrom = "window_from", windowTo = "window_to", startedAt = "started_at", finishedAt = "finished_at"
    }

    /// The counts go out as a JSON object (`runs --json`, the API), not as a string of JSON.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(pipeline, forKey: .pipeline)
        try c.encode(state, forKey: .state)
        try c.encodeIfPresent(scheduledFor, forKey: .scheduledFor)
        try c.encodeIfPresent(windowFrom, forKey: .windowFrom)
        try c.encodeIfPresent(windowTo, forKey: .windowTo)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encodeIfPresent(finishedAt, forKey: .finishedAt)
        if let counts, let object = try? JSONSerialization.jsonObject(with: Data(counts.utf8)) {
            try c.encode(FoundationJSON(object), forKey: .counts)
        } else {
            try c.encodeIfPresent(counts, forKey: .counts)
        }
        try c.encodeIfPresent(error, forKey: .error)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int64.self, forKey: .id)
        pipeline = try c.decode(String.self, forKey: .pipeline)
        state = try c.decode(State.self, forKey: .state)
        scheduledFor = try c.decodeIfPresent(Date.self, forKey: .scheduledFor)
        windowFrom = try c.decodeIfPresent(Date.self, forKey: .windowFrom)
        windowTo = try c.decodeIfPresent(Date.self, forKey: .windowTo)
        startedAt = try c.decode(Date.self, forKey: .startedAt)
        finishedAt = try c.decodeIfPresent(Date.self, forKey: .finishedAt)
        if let text = try? c.decodeIfPresent(String.self, forKey: .counts) {
            counts = text
        } else if let object = try c.decodeIfPresent(FoundationJSON.self, forKey: .counts) {
            counts = String(decoding: try JSONSerialization.data(withJSONObject: object.value, options: [.sortedKeys]), as: UTF8.self)
        }
        error = try c.decodeIfPresent(String.self, forKey: .error)
    }
}

/// A value JSONSerialization reads, encoded and decoded through Codable.
struct FoundationJSON: Codable, @unchecked Sendable {
    let value: Any
    init(_ value: Any) { self.value = value }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch value {
        case let d as [String: Any]:
            var k = encoder.container(keyedBy: Key.self)
            for (name, v) in d { try k.encode(FoundationJSON(v), forKey: Key(stringValue: name)) }
        case let a as [Any]:
            var u = encoder.unkeyedContainer()
            for v in a { try u.encode(FoundationJSON(v)) }
        case let s as String: try c.encode(s)
        case let b as Bool where "\(type(of: value))".contains("Bool"): try c.encode(b)
        case let n as NSNumber:
            if let i = Int64(exactly: n.doubleValue), !"\(n)".contains(".") { try c.encode(i) } else { try c.encode(n.doubleValue) }
        default: try c.encodeNil()
        }
    }

    init(from decoder: any Decoder) throws {
        if let k = try? decoder.container(keyedBy: Key.self) {
            var d: [String: Any] = [:]
            for key in k.allKeys { d[key.stringValue] = try k.decode(FoundationJSON.self, forKey: key).value }
            value = d
        } else if var u = try? decoder.unkeyedContainer() {
            var a: [Any] = []
            while !u.isAtEnd { a.append(try u.decode(FoundationJSON.self).value) }
            value = a
        } else {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { value = NSNull() }
            else if let b = try? c.decode(Bool.self) { value = b }
            else if let i = try? c.decode(Int64.self) { value = i }
            else if let x = try? c.decode(Double.self) { value = x }
            else { value = try c.decode(String.self) }
        }
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// Decides whether a scheduled pipeline is due. Pure: the clock is passed in.
public enum SchedulePlanner {
    public struct Due: Sendable, Equatable {
        /// The latest firing at or before now.
        public var scheduledFor: Date
        /// From the previous firing run (or the first firing) to `scheduledFor`: one run covers
        /// every firing missed while nothing ran.
        public var windowFrom: Date
        public var missed: Int
    }

    /// Due when a firing after the last scheduled run has come; `first` is when the schedule
    /// started to count (a pipeline never run is not owed its whole past).
    public static func due(_ cron: CronSchedule, lastScheduled: Date?, first: Date, now: Date) -> Due? {
        let since = lastScheduled ?? first
        guard var fire = cron.next(after: since), fire <= now else { return nil }
        var missed = 0
        while let n = cron.next(after: fire), n <= now {
            fire = n
            missed += 1
        }
        return Due(scheduledFor: fire, windowFrom: since, missed: missed)
    }
}

/// `after:` dependencies between pipelines: checked for unknown names and cycles, and
/// ordered so each runs after everything it depends on.
public enum PipelineDAG {
    /// The pipelines in an order where dependencies come first; throws with the cycle found.
    public static func order(_ after: [String: [String]]) throws(SluiceError) -> [String] {
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var out: [String] = []
        func visit(_ n: String, _ path: [String]) throws(SluiceError) {
            if state[n] == 2 { return }
            if state[n] == 1 { throw SluiceError(.invalidConfig, "pipelines depend on each other in a cycle: \((path.drop { $0 != n } + [n]).joined(separator: " → "))") }
            state[n] = 1
            for d in after[n] ?? [] {
                guard after[d] != nil else { throw SluiceError(.invalidConfig, "pipeline \(n) runs after '\(d)', which is not a pipeline") }
                try visit(d, path + [n])
            }
            state[n] = 2
            out.append(n)
        }
        for n in after.keys.sorted() { try visit(n, []) }
        return out
    }

    /// Pipelines that run after `name` (directly or through others), in dependency order.
    public static func downstream(of name: String, _ after: [String: [String]]) throws(SluiceError) -> [String] {
        let order = try Self.order(after)
        var reached: Set<String> = [name]
        var out: [String] = []
        for n in order where n != name {
            if (after[n] ?? []).contains(where: reached.contains) {
                reached.insert(n)
                out.append(n)
            }
        }
        return out
    }
}
