public import SluiceCore
import Foundation

/// `${VAR}` and `${VAR:-default}` in `sluice.yml`, replaced by the environment before the YAML
/// is read (as docker compose does), so one file serves every deployment; `$$` is a literal `$`.
/// Comments are left alone. An unset variable without a default is an error naming its line.
public enum EnvInterpolation {
    public static func expand(_ text: String, environment: [String: String], fileName: String) throws(SluiceError) -> String {
        guard text.contains("$") else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if n > 0 { out += "\n" }
            var code = Substring(line), comment = Substring("")
            if let hash = commentStart(line) { code = line[..<hash]; comment = line[hash...] }
            out += try expandLine(code, environment, line: Int64(n + 1), fileName: fileName) + comment
        }
        return out
    }

    /// Where a `#` comment starts (at the line's start or after a blank), outside quotes.
    static func commentStart(_ line: Substring) -> Substring.Index? {
        var quote: Character? = nil
        var previous: Character = " "
        for i in line.indices {
            let c = line[i]
            if let q = quote { if c == q { quote = nil } } else if c == "\"" || c == "'" { quote = c } else if c == "#" && (previous == " " || previous == "\t") { return i }
            previous = c
        }
        return nil
    }

    static func expandLine(_ s: Substring, _ env: [String: String], line: Int64, fileName: String) throws(SluiceError) -> String {
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            let next = s.index(after: i)
            guard c == "$", next < s.endIndex else { out.append(c); i = next; continue }
            if s[next] == "$" { out.append("$"); i = s.index(after: next); continue }
            guard s[next] == "{", let close = s[next...].firstIndex(of: "}") else { out.append(c); i = next; continue }
            let body = s[s.index(after: next)..<close]
            let (name, fallback): (Substring, Substring?) = body.range(of: ":-").map { (body[..<$0.lowerBound], body[$0.upperBound...]) } ?? (body, nil)
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw SluiceError(.invalidConfig, "'${\(body)}' is not a variable (write ${NAME} or ${NAME:-default}; $$ for a literal $)", at: SourceLocation(file: fileName, line: line))
            }
            if let v = env[String(name)], !(v.isEmpty && fallback != nil) {
                out += v
            } else if let fallback {
                out += fallback
            } else {
                throw SluiceError(.invalidConfig, "environment variable \(name) is not set (give it a default: ${\(name):-value})", at: SourceLocation(file: fileName, line: line))
            }
            i = s.index(after: close)
        }
        return out
    }
}
