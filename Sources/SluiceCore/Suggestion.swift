/// "Did you mean ...?" for a misspelt name: the closest known name within a few edits.
public enum Suggestion {
    /// The candidate closest to `name` by edit distance (insert, delete, substitute, swap of
    /// neighbours), ignoring case; nil when none is near enough to be a likely typo.
    public static func closest(to name: String, in candidates: some Sequence<String>) -> String? {
        let a = Array(name.lowercased().unicodeScalars)
        var best: (String, Int)? = nil
        for c in candidates {
            let b = Array(c.lowercased().unicodeScalars)
            let limit = max(2, min(a.count, b.count) / 3)
            if abs(a.count - b.count) > limit { continue }
            let d = distance(a, b)
            if d <= limit, best.map({ d < $0.1 }) ?? true { best = (c, d) }
        }
        return best?.0
    }

    /// ` (did you mean X?)` or nothing.
    public static func hint(for name: String, in candidates: some Sequence<String>) -> String {
        closest(to: name, in: candidates).map { "; did you mean '\($0)'?" } ?? ""
    }

    /// Optimal string alignment distance.
    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev2 = [Int](repeating: 0, count: b.count + 1)
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] { cur[j] = min(cur[j], prev2[j - 2] + 1) }
            }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[b.count]
    }
}
