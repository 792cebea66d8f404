/*
 * Runs a declarative Jenkinsfile without Jenkins (Jenkins is on no registry
 * these machines reach; Groovy is on Maven Central). See README.md beside this
 * file for what is supported; run.sh resolves Groovy and starts this script.
 *
 *   run.sh [--jenkinsfile Jenkinsfile] [--workspace DIR] [--output DIR]
 *          [--file-credential ID=PATH] [--string-credential ID=VALUE]
 *          [--userpass-credential ID=USER:PASSWORD] [--param NAME=VALUE]
 *          [--branch NAME] [--build-number N] [--job NAME]
 *
 * Every `sh` step runs for real (`/bin/sh -xe`, as Jenkins does) in the
 * workspace, in order, with the agent's environment plus Jenkins' built-in
 * variables, `environment {}` (pipeline, then stage), `withEnv`, and the
 * variables `withCredentials` binds. A failing step fails the build: later
 * stages are skipped, `post` still runs. Exit code: 0 SUCCESS, 1 FAILURE,
 * 3 UNSTABLE, 4 ABORTED (timeout), 2 the Jenkinsfile or the arguments are
 * invalid. `--output` receives summary.json (result, stages, steps, triggers,
 * options) and archive/ (what archiveArtifacts kept).
 */
import groovy.json.JsonOutput
import groovy.xml.XmlSlurper
import java.nio.file.FileSystems
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths
import java.nio.file.StandardCopyOption
import java.util.concurrent.TimeUnit

class HarnessError extends RuntimeException {
  HarnessError(String m) { super(m) }
}

/** A step failed (Jenkins: the build fails with this message). */
class StepFailure extends RuntimeException {
  String result
  StepFailure(String m, String result = 'FAILURE') { super(m); this.result = result }
}

class Result {
  static final List<String> ORDER = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'ABORTED']
  static String worst(String a, String b) { ORDER.indexOf(a) >= ORDER.indexOf(b) ? a : b }
}

/** `env` in a Jenkinsfile: reads the effective environment, `env.X = v` sets a build-wide variable. */
class EnvAccess {
  Build build
  EnvAccess(Build b) { build = b }
  def propertyMissing(String name) { build.effectiveEnv()[name] }
  def propertyMissing(String name, value) { build.globalEnv[name] = value == null ? null : value.toString() }
  def getAt(String name) { build.effectiveEnv()[name] }
  String toString() { 'env' }
}

class CredentialBinding {
  String kind, id, variable, usernameVariable, passwordVariable
}

/** Recorded options/triggers/agent: name plus arguments, as written. */
class Recorded {
  String name
  List args
  String toString() {
    def a = args.collect { it instanceof Map ? it.collect { k, v -> "$k: ${v instanceof Recorded ? v : JsonOutput.toJson(v)}" }.join(', ') : (it instanceof Recorded ? it.toString() : JsonOutput.toJson(it)) }
    "${name}(${a.join(', ')})"
  }
}

class RecordingDsl {
  List<Recorded> items = []
  def methodMissing(String name, args) {
    List list = (args as List).collect { it instanceof Closure ? '{…}' : it }
    // logRotator(...) inside buildDiscarder(...) is an argument, not an option of its own.
    items.removeAll { item -> list.any { it.is(item) } }
    def r = new Recorded(name: name, args: list)
    items << r
    r
  }
}

class ParametersDsl {
  Map<String, Map> params = [:]
  private def add(String type, Map m) {
    if (!m.name) throw new HarnessError("${type} needs a name")
    params[m.name as String] = [type: type, defaultValue: m.defaultValue, description: m.description]
  }
  def booleanParam(Map m) { add('boolean', m) }
  def string(Map m) { add('string', m) }
  def text(Map m) { add('text', m) }
  def choice(Map m) { add('choice', m + [defaultValue: (m.choices instanceof List ? m.choices[0] : m.choices?.toString()?.split('\n')?.getAt(0))]) }
  def password(Map m) { add('password', m) }
}

/** `environment { NAME = value }`, in order; `credentials('id')` binds a credential like Jenkins does. */
class EnvironmentDsl {
  Build build
  LinkedHashMap<String, String> values = [:]
  EnvironmentDsl(Build b) { build = b }
  void setProperty(String name, value) {
    if (value instanceof CredentialValue) {
      values.putAll(value.vars(name))
      build.secrets.addAll(value.secrets)
    } else values[name] = value == null ? null : value.toString()
  }
  def getProperty(String name) {
    if (name == 'env') return build.env
    if (name == 'params') return build.params
    if (values.containsKey(name)) return values[name]
    def v = build.effectiveEnv()[name]
    if (v != null) return v
    throw new MissingPropertyException(name, EnvironmentDsl)
  }
  CredentialValue credentials(String id) { build.credentialValue(id) }
}

class CredentialValue {
  String kind, value, user, password
  List<String> secrets = []
  Map<String, String> vars(String name) {
    if (kind == 'usernamePassword') return [(name): "${user}:${password}".toString(), (name + '_USR'): user, (name + '_PSW'): password]
    [(name): value]
  }
}

class WhenDsl {
  Build build
  List<Map> conditions = []
  WhenDsl(Build b) { build = b }
  def branch(String pattern) { conditions << [what: "branch '${pattern}'", test: { build.branchMatches(pattern) }] }
  def environment(Map m) { conditions << [what: "environment ${m.name}=${m.value}", test: { build.effectiveEnv()[m.name as String] == m.value?.toString() }] }
  def expression(Closure c) {
    conditions << [what: 'expression', test: {
      c.resolveStrategy = Closure.DELEGATE_FIRST
      c.delegate = build.scriptContext()
      def v = c.call()
      v as boolean
    }]
  }
  def changeRequest(Map m = [:]) { conditions << [what: 'changeRequest', test: { build.effectiveEnv()['CHANGE_ID'] != null }] }
  def buildingTag() { conditions << [what: 'buildingTag', test: { build.effectiveEnv()['TAG_NAME'] != null }] }
  def tag(String pattern) { conditions << [what: "tag '${pattern}'", test: { def t = build.effectiveEnv()['TAG_NAME']; t != null && Build.globMatches(pattern, t) }] }
  def beforeAgent(boolean b) {}
  def beforeInput(boolean b) {}
  def beforeOptions(boolean b) {}
  private List<Map> nested(Closure c) {
    def w = new WhenDsl(build)
    c.resolveStrategy = Closure.DELEGATE_FIRST
    c.delegate = w
    c.call()
    w.conditions
  }
  def not(Closure c) { def inner = nested(c); conditions << [what: 'not', test: { !inner.every { it.test.call() } }] }
  def allOf(Closure c) { def inner = nested(c); conditions << [what: 'allOf', test: { inner.every { it.test.call() } }] }
  def anyOf(Closure c) { def inner = nested(c); conditions << [what: 'anyOf', test: { inner.any { it.test.call() } }] }
  def methodMissing(String name, args) { throw new HarnessError("when: unsupported condition '${name}'") }
}

class PostDsl {
  static final List<String> ORDER = ['always', 'changed', 'fixed', 'regression', 'aborted', 'failure', 'success', 'unstable', 'unsuccessful', 'cleanup']
  Map<String, Closure> blocks = [:]
  def methodMissing(String name, args) {
    if (!ORDER.contains(name)) throw new HarnessError("post: unknown condition '${name}' (known: ${ORDER.join(', ')})")
    if (blocks.containsKey(name)) throw new HarnessError("post: '${name}' given twice")
    blocks[name] = (args as List)[0] as Closure
  }
}

class StageSpec {
  String name
  Closure steps
  Closure when
  Closure environment
  Closure post
  List<StageSpec> stages = []
  List<StageSpec> parallel = []
  List<Recorded> options = []
}

class StageDsl {
  StageSpec spec
  StageDsl(StageSpec s) { spec = s }
  def steps(Closure c) { spec.steps = c }
  def when(Closure c) { spec.when = c }
  def environment(Closure c) { spec.environment = c }
  def post(Closure c) { spec.post = c }
  def agent(Object a) {}
  def getAny() { 'any' }
  def getNone() { 'none' }
  def tools(Closure c) {}
  def input(Closure c) { throw new HarnessError("stage '${spec.name}': input is not supported (nobody to answer)") }
  def options(Closure c) {
    def r = new RecordingDsl()
    c.resolveStrategy = Closure.DELEGATE_FIRST
    c.delegate = r
    c.call()
    spec.options.addAll(r.items)
  }
  def stages(Closure c) { spec.stages.addAll(StagesDsl.collect(c)) }
  def parallel(Closure c) { spec.parallel.addAll(StagesDsl.collect(c)) }
  def failFast(boolean b) {}
  def methodMissing(String name, args) { throw new HarnessError("stage '${spec.name}': unknown directive '${name}'") }
}

class StagesDsl {
  List<StageSpec> list = []
  static List<StageSpec> collect(Closure c) {
    def d = new StagesDsl()
    c.resolveStrategy = Closure.DELEGATE_FIRST
    c.delegate = d
    c.call()
    d.list
  }
  def stage(String name, Closure body) {
    def s = new StageSpec(name: name)
    body.resolveStrategy = Closure.DELEGATE_FIRST
    body.delegate = new StageDsl(s)
    body.call()
    int kinds = (s.steps ? 1 : 0) + (s.stages ? 1 : 0) + (s.parallel ? 1 : 0)
    if (kinds != 1) throw new HarnessError("stage '${name}' needs exactly one of steps, stages or parallel")
    list << s
  }
  def methodMissing(String name, args) { throw new HarnessError("stages: only stage(...) is allowed, not '${name}'") }
}

class PipelineDsl {
  Build build
  Object agent
  List<Recorded> options = []
  List<Recorded> triggers = []
  Closure environment
  Closure post
  List<StageSpec> stages
  PipelineDsl(Build b) { build = b }
  def getAny() { 'any' }
  def getNone() { 'none' }
  def agent(Object a) { agent = a instanceof Closure ? record(a).join(' ') : a }
  private List<Recorded> record(Closure c) {
    def r = new RecordingDsl()
    c.resolveStrategy = Closure.DELEGATE_FIRST
    c.delegate = r
    c.call()
    r.items
  }
  def options(Closure c) { options.addAll(record(c)) }
  def triggers(Closure c) { triggers.addAll(record(c)) }
  def tools(Closure c) {}
  def libraries(Closure c) {}
  def parameters(Closure c) {
    def p = new ParametersDsl()
    c.resolveStrategy = Closure.DELEGATE_FIRST
    c.delegate = p
    c.call()
    build.declareParams(p.params)
  }
  def environment(Closure c) { environment = c }
  def stages(Closure c) { stages = StagesDsl.collect(c) }
  def post(Closure c) { post = c }
  def methodMissing(String name, args) { throw new HarnessError("pipeline: unknown section '${name}'") }
}

/** The steps a Jenkinsfile calls inside steps {}, script {}, post conditions and wrappers. */
class StepsDsl {
  Build build
  StepsDsl(Build b) { build = b }
  def getEnv() { build.env }
  def getParams() { build.params }
  def getScm() { 'scm' }
  def getCurrentBuild() { [result: build.result, number: build.buildNumber, currentResult: build.result] }

  def sh(String script) { build.sh([script: script]) }
  def sh(Map m) { build.sh(m) }
  def echo(Object msg) { build.log(msg.toString()) }
  def error(String msg) { throw new StepFailure(msg) }
  def unstable(String msg) { build.log("WARNING: ${msg}"); build.stageResult('UNSTABLE') }
  def isUnix() { true }
  def checkout(Object what) {
    build.record('checkout', [what.toString()])
    build.log("[harness] checkout ${what}: the workspace ${build.workspace} is used as it is")
  }
  def script(Closure c) { build.runSteps(c) }
  def fileExists(String p) { Files.exists(build.cwd().resolve(p)) }
  def readFile(String p) { build.cwd().resolve(p).toFile().getText('UTF-8') }
  def readFile(Map m) { readFile(m.file as String) }
  def writeFile(Map m) { def f = build.cwd().resolve(m.file as String); Files.createDirectories(f.parent); f.toFile().setText(m.text as String, 'UTF-8') }
  def dir(String p, Closure c) { build.withDir(p, c) }
  def withEnv(List<String> vars, Closure c) {
    Map<String, String> m = [:]
    vars.each { String v -> int i = v.indexOf('='); if (i < 1) throw new HarnessError("withEnv: '${v}' is not NAME=value"); m[v.substring(0, i)] = v.substring(i + 1) }
    build.withLayer(m, [], c)
  }
  def file(Map m) { new CredentialBinding(kind: 'file', id: m.credentialsId, variable: m.variable) }
  def string(Map m) { new CredentialBinding(kind: 'string', id: m.credentialsId, variable: m.variable) }
  def usernamePassword(Map m) { new CredentialBinding(kind: 'usernamePassword', id: m.credentialsId, usernameVariable: m.usernameVariable, passwordVariable: m.passwordVariable) }
  def withCredentials(List<CredentialBinding> bindings, Closure c) { build.withCredentials(bindings, c) }
  def timeout(Map m, Closure c) { build.withTimeout(m, c) }
  def retry(int n, Closure c) {
    for (int i = 1; ; i++) {
      try { return build.runSteps(c) }
      catch (StepFailure e) { if (i >= n || e.result == 'ABORTED') throw e; build.log("Retrying (${i}/${n}) after: ${e.message}") }
    }
  }
  def catchError(Map m = [:], Closure c) {
    try { build.runSteps(c) }
    catch (StepFailure e) {
      build.log("catchError: ${e.message}")
      build.stageResult((m.stageResult ?: m.buildResult ?: 'FAILURE') as String)
      build.result = Result.worst(build.result, (m.buildResult ?: 'FAILURE') as String)
    }
  }
  def junit(String pattern) { build.junit([testResults: pattern]) }
  def junit(Map m) { build.junit(m) }
  def archiveArtifacts(String pattern) { build.archive([artifacts: pattern]) }
  def archiveArtifacts(Map m) { build.archive(m) }
  def propertyMissing(String name) {
    def v = build.effectiveEnv()[name]
    if (v != null) return v
    if (build.params.containsKey(name)) return build.params[name]
    throw new MissingPropertyException(name, StepsDsl)
  }
  def methodMissing(String name, args) {
    // Methods the Jenkinsfile defines itself (def helper() {...} next to pipeline {}).
    if (build.script != null && build.script.metaClass.respondsTo(build.script, name, args as Object[]))
      return build.script.invokeMethod(name, args)
    throw new StepFailure("harness: unsupported step '${name}'")
  }
}

class Build {
  Path workspace
  Path output
  String jenkinsfile
  int buildNumber = 1
  String job = 'driftline'
  String branch
  String result = 'SUCCESS'
  String currentStage
  String currentStageResult
  Map<String, Map> credentials = [:]
  Map<String, String> paramArgs = [:]
  Map<String, Object> params = [:]
  Map<String, String> pipelineEnv = [:]
  Map<String, String> globalEnv = [:]
  List<Map<String, String>> layers = []
  List<Path> dirs = []
  List<String> secrets = []
  EnvAccess env
  Long deadline
  List<Map> stagesRun = []
  List<Map> steps = []
  List<String> archived = []
  Map tests = [total: 0, failed: 0, files: 0]
  PipelineDsl pipeline
  Script script

  Build() { env = new EnvAccess(this) }

  static boolean globMatches(String pattern, String value) {
    FileSystems.default.getPathMatcher('glob:' + pattern).matches(Paths.get(value))
  }

  boolean branchMatches(String pattern) {
    def b = effectiveEnv()['BRANCH_NAME']
    b != null && (b == pattern || globMatches(pattern, b))
  }

  void log(String line) {
    String out = line
    secrets.findAll { it }.each { out = out.replace(it, '****') }
    System.out.println(out)
    System.out.flush()
  }

  void record(String step, List args) {
    steps << [stage: currentStage, step: step, args: args]
  }

  void stageResult(String r) { currentStageResult = Result.worst(currentStageResult ?: 'SUCCESS', r); result = Result.worst(result, r) }

  void declareParams(Map<String, Map> declared) {
    declared.each { name, p ->
      def raw = paramArgs.containsKey(name) ? paramArgs[name] : p.defaultValue
      if (p.type == 'boolean') {
        if (raw instanceof String && !(raw in ['true', 'false'])) throw new HarnessError("--param ${name}=${raw}: expected true or false")
        params[name] = raw instanceof String ? raw == 'true' : (raw as boolean)
      } else params[name] = raw == null ? '' : raw.toString()
    }
    def unknown = paramArgs.keySet() - declared.keySet()
    if (unknown) throw new HarnessError("--param ${unknown.join(', ')}: not declared in parameters {}")
  }

  Map<String, String> builtins() {
    Map<String, String> m = [
      WORKSPACE: workspace.toString(),
      BUILD_NUMBER: buildNumber.toString(),
      BUILD_ID: buildNumber.toString(),
      BUILD_DISPLAY_NAME: "#${buildNumber}".toString(),
      JOB_NAME: job,
      JOB_BASE_NAME: job,
      BUILD_TAG: "jenkins-${job}-${buildNumber}".toString(),
      NODE_NAME: 'built-in',
      EXECUTOR_NUMBER: '0',
      JENKINS_HOME: output.resolve('jenkins-home').toString(),
      WORKSPACE_TMP: output.resolve('workspace@tmp').toString(),
    ]
    if (branch) m.BRANCH_NAME = branch
    if (currentStage) m.STAGE_NAME = currentStage
    params.each { k, v -> m[k] = v.toString() }
    m
  }

  Map<String, String> effectiveEnv() {
    Map<String, String> m = new LinkedHashMap<>(System.getenv())
    m.putAll(builtins())
    m.putAll(pipelineEnv)
    m.putAll(globalEnv)
    layers.each { m.putAll(it) }
    m.findAll { k, v -> v != null }
  }

  Path cwd() { dirs ? dirs.last() : workspace }

  StepsDsl scriptContext() { new StepsDsl(this) }

  def runSteps(Closure c) {
    def clone = c.clone() as Closure
    clone.resolveStrategy = Closure.DELEGATE_FIRST
    clone.delegate = new StepsDsl(this)
    clone.call()
  }

  def withLayer(Map<String, String> vars, List<String> newSecrets, Closure c) {
    layers << vars
    secrets.addAll(newSecrets)
    try { return runSteps(c) }
    finally { layers.remove(layers.size() - 1) }
  }

  def withDir(String p, Closure c) {
    def d = cwd().resolve(p).normalize()
    Files.createDirectories(d)
    dirs << d
    try { return runSteps(c) }
    finally { dirs.remove(dirs.size() - 1) }
  }

  Map credential(String id) {
    def c = credentials[id]
    if (c == null) throw new StepFailure("ERROR: Could not find credentials entry with ID '${id}'")
    c
  }

  CredentialValue credentialValue(String id) {
    def c = credential(id)
    switch (c.kind) {
      case 'string': return new CredentialValue(kind: 'string', value: c.value, secrets: [c.value])
      case 'usernamePassword': return new CredentialValue(kind: 'usernamePassword', user: c.user, password: c.password, secrets: [c.password])
      case 'file': return new CredentialValue(kind: 'file', value: secretFileCopy(id, c.path as String).toString())
    }
    throw new HarnessError("credential ${id}: unknown kind ${c.kind}")
  }

  /** Jenkins copies a secret file into the workspace's @tmp for the block and deletes it afterwards. */
  Path secretFileCopy(String id, String source) {
    def src = Paths.get(source)
    if (!Files.isRegularFile(src)) throw new StepFailure("credential '${id}': the secret file ${source} does not exist")
    def dir = Files.createTempDirectory(Files.createDirectories(output.resolve('workspace@tmp').resolve('secretFiles')), 'secret-')
    def dst = dir.resolve(src.fileName.toString())
    Files.copy(src, dst)
    dst.toFile().setReadable(false, false)
    dst.toFile().setReadable(true, true)
    dst
  }

  def withCredentials(List<CredentialBinding> bindings, Closure c) {
    Map<String, String> vars = [:]
    List<String> newSecrets = []
    List<Path> temp = []
    try {
      bindings.each { b ->
        def cred = credential(b.id)
        if (cred.kind != b.kind) throw new StepFailure("ERROR: credentials '${b.id}' are of kind ${cred.kind}, not ${b.kind}")
        switch (b.kind) {
          case 'file':
            def p = secretFileCopy(b.id, cred.path as String)
            temp << p
            vars[b.variable] = p.toString()
            break
          case 'string':
            vars[b.variable] = cred.value as String
            newSecrets << (cred.value as String)
            break
          case 'usernamePassword':
            if (b.usernameVariable) vars[b.usernameVariable] = cred.user as String
            if (b.passwordVariable) vars[b.passwordVariable] = cred.password as String
            newSecrets << (cred.password as String)
            break
        }
      }
      record('withCredentials', bindings.collect { [kind: it.kind, credentialsId: it.id] })
      return withLayer(vars, newSecrets, c)
    } finally {
      temp.each { p -> Files.deleteIfExists(p); Files.deleteIfExists(p.parent) }
    }
  }

  def withTimeout(Map m, Closure c) {
    long ms = TimeUnit.valueOf(((m.unit ?: 'MINUTES') as String).toUpperCase()).toMillis(m.time as long)
    Long saved = deadline
    long mine = System.currentTimeMillis() + ms
    deadline = saved == null ? mine : Math.min(saved, mine)
    try { return runSteps(c) }
    finally { deadline = saved }
  }

  def sh(Map m) {
    String script = m.script as String
    if (script == null) throw new HarnessError('sh: no script')
    record('sh', [script])
    if (m.label) log("[Pipeline] sh (${m.label})") else log('[Pipeline] sh')
    def tmp = Files.createDirectories(output.resolve('workspace@tmp'))
    def file = Files.createTempFile(tmp, 'script', '.sh')
    file.toFile().setText(script, 'UTF-8')
    List<String> cmd = script.startsWith('#!') ? [file.toString()] : ['/bin/sh', '-xe', file.toString()]
    if (script.startsWith('#!')) file.toFile().setExecutable(true)
    def pb = new ProcessBuilder(cmd).directory(cwd().toFile())
    pb.environment().clear()
    pb.environment().putAll(effectiveEnv())
    boolean capture = m.returnStdout as boolean
    if (!capture) pb.redirectErrorStream(true)
    def proc = pb.start()
    proc.outputStream.close()
    def captured = new StringBuilder()
    def pump = { InputStream ins, boolean keep ->
      Thread.start {
        ins.withReader('UTF-8') { r ->
          String line
          while ((line = r.readLine()) != null) { if (keep) captured.append(line).append('\n') else log(line) }
        }
      }
    }
    def t1 = pump(proc.inputStream, capture)
    def t2 = capture ? pump(proc.errorStream, false) : null
    boolean done
    if (deadline != null) {
      long left = deadline - System.currentTimeMillis()
      done = left > 0 && proc.waitFor(left, TimeUnit.MILLISECONDS)
    } else {
      proc.waitFor()
      done = true
    }
    if (!done) {
      proc.toHandle().descendants().each { it.destroyForcibly() }
      proc.destroyForcibly()
      proc.waitFor()
      t1.join(); t2?.join()
      Files.deleteIfExists(file)
      throw new StepFailure('Timeout has been exceeded', 'ABORTED')
    }
    t1.join(); t2?.join()
    Files.deleteIfExists(file)
    int code = proc.exitValue()
    if (m.returnStatus) return code
    if (code != 0) throw new StepFailure("script returned exit code ${code}")
    capture ? captured.toString() : null
  }

  List<Path> glob(String patterns, String excludes = null) {
    List<Path> out = []
    def ex = (excludes ?: '').split(',')*.trim().findAll { it }
    patterns.split(',')*.trim().findAll { it }.each { String pat ->
      String p = pat.endsWith('/') ? pat + '**' : pat
      List<String> parts = p.split('/') as List
      int i = parts.findIndexOf { it.contains('*') || it.contains('?') || it.contains('[') || it.contains('{') }
      Path base = i < 0 ? workspace.resolve(p) : workspace.resolve(parts.subList(0, i).join('/') ?: '.')
      def matchers = [p]
      if (p.contains('**/')) matchers << p.replace('**/', '')
      def pm = matchers.collect { FileSystems.default.getPathMatcher('glob:' + it) }
      def exm = ex.collect { FileSystems.default.getPathMatcher('glob:' + (it.endsWith('/') ? it + '**' : it)) }
      if (!Files.exists(base)) return
      Files.walk(base).withCloseable { s ->
        s.filter { Files.isRegularFile(it) }.forEach { f ->
          def rel = workspace.relativize(f)
          if (pm.any { it.matches(rel) } && !exm.any { it.matches(rel) }) out << f
        }
      }
    }
    out.unique().sort()
  }

  def junit(Map m) {
    String pattern = (m.testResults ?: '') as String
    record('junit', [pattern])
    def files = glob(pattern)
    if (!files) {
      if (m.allowEmptyResults) { log("Recording test results: none match ${pattern}"); return }
      throw new StepFailure("ERROR: No test report files were found. Configuration error? (${pattern})")
    }
    int total = 0, failed = 0
    files.each { f ->
      def xml
      try { xml = new XmlSlurper().parse(f.toFile()) }
      catch (Exception e) { throw new StepFailure("ERROR: ${workspace.relativize(f)} is not JUnit XML: ${e.message}") }
      def cases = xml.'**'.findAll { it.name() == 'testcase' }
      total += cases.size()
      failed += cases.count { c -> c.children().any { it.name() in ['failure', 'error'] } }
    }
    tests.total += total
    tests.failed += failed
    tests.files += files.size()
    log("Recording test results: ${files.size()} file(s), ${total} test(s), ${failed} failed")
    if (failed > 0) stageResult('UNSTABLE')
  }

  def archive(Map m) {
    String pattern = (m.artifacts ?: '') as String
    record('archiveArtifacts', [pattern])
    def files = glob(pattern, m.excludes as String)
    if (!files) {
      if (m.allowEmptyArchive) { log("Archiving artifacts: none match ${pattern}"); return }
      throw new StepFailure("ERROR: No artifacts found that match the file pattern \"${pattern}\". Configuration error?")
    }
    def dest = output.resolve('archive')
    files.each { f ->
      def rel = workspace.relativize(f)
      def d = dest.resolve(rel.toString())
      Files.createDirectories(d.parent)
      Files.copy(f, d, StandardCopyOption.REPLACE_EXISTING)
      archived << rel.toString()
    }
    log("Archiving artifacts: ${files.size()} file(s)")
  }

  /** Runs a post section: conditions in Jenkins' order, each one's failure recorded, the rest still run. */
  void runPost(Closure post, String label, Closure<String> status) {
    if (post == null) return
    def dsl = new PostDsl()
    post.resolveStrategy = Closure.DELEGATE_FIRST
    post.delegate = dsl
    post.call()
    PostDsl.ORDER.each { cond ->
      def block = dsl.blocks[cond]
      if (block == null) return
      String st = status.call()
      boolean run
      switch (cond) {
        case 'always': case 'cleanup': run = true; break
        case 'success': run = st == 'SUCCESS'; break
        case 'failure': run = st == 'FAILURE'; break
        case 'unstable': run = st == 'UNSTABLE'; break
        case 'aborted': run = st == 'ABORTED'; break
        case 'unsuccessful': run = st != 'SUCCESS'; break
        default: run = false // changed, fixed, regression: no previous build here
      }
      if (!run) {
        if (cond in ['changed', 'fixed', 'regression']) log("[harness] post ${cond}: skipped (no previous build to compare with)")
        return
      }
      log("[Pipeline] { (${label}: ${cond})")
      steps << [stage: currentStage, step: 'post', args: [label, cond]]
      try { runSteps(block) }
      catch (StepFailure e) {
        log("ERROR: ${e.message}")
        result = Result.worst(result, e.result)
      }
      log('[Pipeline] }')
    }
  }

  boolean whenPasses(StageSpec s) {
    if (s.when == null) return true
    def w = new WhenDsl(this)
    s.when.resolveStrategy = Closure.DELEGATE_FIRST
    s.when.delegate = w
    s.when.call()
    w.conditions.every { it.test.call() }
  }

  Map<String, String> evalEnvironment(Closure c) {
    if (c == null) return [:]
    def d = new EnvironmentDsl(this)
    c.resolveStrategy = Closure.DELEGATE_FIRST
    c.delegate = d
    c.call()
    d.@values
  }

  /** Sequential stages skip once the build failed; parallel branches (run one after the other here) all run. */
  void runStages(List<StageSpec> list, boolean skipAll, boolean parallel = false) {
    list.each { s -> runStage(s, skipAll || (!parallel && result in ['FAILURE', 'ABORTED'])) }
  }

  void runStage(StageSpec s, boolean skip) {
    String parent = currentStage
    String parentResult = currentStageResult
    currentStage = s.name
    currentStageResult = 'SUCCESS'
    Map entry = [name: s.name, status: 'SUCCESS']
    stagesRun << entry
    log("[Pipeline] { (${s.name})")
    try {
      if (skip) {
        entry.status = 'SKIPPED_FAILURE'
        log("Stage \"${s.name}\" skipped due to earlier failure(s)")
        return
      }
      boolean pass
      try { pass = whenPasses(s) }
      catch (StepFailure e) { pass = false; log("ERROR: when: ${e.message}"); result = Result.worst(result, 'FAILURE'); entry.status = 'FAILURE'; return }
      if (!pass) {
        entry.status = 'SKIPPED_WHEN'
        log("Stage \"${s.name}\" skipped due to when conditional")
        return
      }
      Map<String, String> stageEnv
      try { stageEnv = evalEnvironment(s.environment) }
      catch (StepFailure e) { log("ERROR: ${e.message}"); stageResult(e.result); entry.status = currentStageResult; return }
      layers << stageEnv
      Long saved = deadline
      try {
        def t = s.options.find { it.name == 'timeout' }
        if (t) {
          def a = t.args[0] as Map
          long mine = System.currentTimeMillis() + TimeUnit.valueOf(((a.unit ?: 'MINUTES') as String).toUpperCase()).toMillis(a.time as long)
          deadline = deadline == null ? mine : Math.min(deadline, mine)
        }
        if (s.steps) runSteps(s.steps)
        else if (s.stages) runStages(s.stages, false)
        else runStages(s.parallel, false, true)
      } catch (StepFailure e) {
        log("ERROR: ${e.message}")
        stageResult(e.result)
      } finally {
        deadline = saved
        String st = currentStageResult
        runPost(s.post, "stage ${s.name} post", { currentStageResult })
        layers.remove(layers.size() - 1)
        entry.status = currentStageResult ?: st
      }
    } finally {
      log('[Pipeline] }')
      currentStage = parent
      if (parentResult != null) currentStageResult = Result.worst(parentResult, entry.status.startsWith('SKIPPED') ? 'SUCCESS' : entry.status)
      else currentStageResult = null
    }
  }

  void run(PipelineDsl p) {
    pipeline = p
    if (p.agent == null) throw new HarnessError("pipeline: missing required section 'agent'")
    if (p.stages == null || p.stages.isEmpty()) throw new HarnessError("pipeline: missing required section 'stages' (or it has no stage)")
    def t = p.options.find { it.name == 'timeout' }
    if (t) {
      def a = t.args[0] as Map
      deadline = System.currentTimeMillis() + TimeUnit.valueOf(((a.unit ?: 'MINUTES') as String).toUpperCase()).toMillis(a.time as long)
    }
    log("[harness] triggers: ${p.triggers.join(', ') ?: '-'}; options: ${p.options.join(', ') ?: '-'}; agent: ${p.agent}")
    try {
      pipelineEnv = evalEnvironment(p.environment)
      runStages(p.stages, false)
    } catch (StepFailure e) {
      log("ERROR: ${e.message}")
      result = Result.worst(result, e.result)
    }
    currentStage = null
    deadline = null
    runPost(p.post, 'Declarative: Post Actions', { result })
  }
}

// ---- command line ---------------------------------------------------------------------------------------
Map opts = [jenkinsfile: 'Jenkinsfile', workspace: '.', output: null]
Build build = new Build()
List<String> argv = (args as List<String>)
int exitCode
try {
  if (argv.size() % 2 != 0) throw new HarnessError("arguments come in pairs (--option value): ${argv.join(' ')}")
  for (int i = 0; i < argv.size(); i += 2) {
    String a = argv[i]
    String v = argv[i + 1]
    int eq = v.indexOf('=')
    String key = eq > 0 ? v.substring(0, eq) : null
    String val = eq > 0 ? v.substring(eq + 1) : null
    boolean needsPair = a in ['--param', '--file-credential', '--string-credential', '--userpass-credential']
    if (needsPair && key == null) throw new HarnessError("${a} ${v}: expected NAME=VALUE")
    if (a == '--jenkinsfile') opts.jenkinsfile = v
    else if (a == '--workspace') opts.workspace = v
    else if (a == '--output') opts.output = v
    else if (a == '--branch') build.branch = v
    else if (a == '--build-number') build.buildNumber = v as int
    else if (a == '--job') build.job = v
    else if (a == '--param') build.paramArgs[key] = val
    else if (a == '--file-credential') build.credentials[key] = [kind: 'file', path: val]
    else if (a == '--string-credential') build.credentials[key] = [kind: 'string', value: val]
    else if (a == '--userpass-credential') {
      int c = val.indexOf(':')
      if (c < 1) throw new HarnessError("${a} ${v}: expected ID=USER:PASSWORD")
      build.credentials[key] = [kind: 'usernamePassword', user: val.substring(0, c), password: val.substring(c + 1)]
    } else throw new HarnessError("unknown argument ${a}")
  }
  build.workspace = Paths.get(opts.workspace as String).toAbsolutePath().normalize()
  build.output = Paths.get((opts.output ?: build.workspace.resolve('.services/jenkinsfile-harness').toString()) as String).toAbsolutePath().normalize()
  Files.createDirectories(build.output)
  def jf = build.workspace.resolve(opts.jenkinsfile as String)
  if (!Files.isRegularFile(jf)) throw new HarnessError("no Jenkinsfile at ${jf}")
  build.jenkinsfile = jf.toString()
  build.log("[harness] running ${jf} in ${build.workspace} (build #${build.buildNumber} of ${build.job}${build.branch ? ', branch ' + build.branch : ''})")

  PipelineDsl captured = null
  def binding = new Binding()
  binding.setVariable('pipeline', { Closure body ->
    if (captured != null) throw new HarnessError('more than one pipeline {} block')
    def dsl = new PipelineDsl(build)
    body.resolveStrategy = Closure.DELEGATE_FIRST
    body.delegate = dsl
    body.call()
    captured = dsl
  })
  def shell = new GroovyShell(this.class.classLoader, binding)
  try {
    build.script = shell.parse(jf.toFile().getText('UTF-8'), 'Jenkinsfile')
    build.script.run()
  } catch (HarnessError e) {
    throw e
  } catch (StepFailure e) {
    throw new HarnessError(e.message)
  } catch (org.codehaus.groovy.control.CompilationFailedException e) {
    throw new HarnessError("the Jenkinsfile does not compile: ${e.message}")
  } catch (MissingMethodException | MissingPropertyException e) {
    throw new HarnessError("the Jenkinsfile uses something the harness does not know: ${e.message}")
  }
  if (captured == null) throw new HarnessError('the Jenkinsfile has no pipeline {} block')
  build.run(captured)
  build.log("Finished: ${build.result}")
  exitCode = [SUCCESS: 0, FAILURE: 1, UNSTABLE: 3, ABORTED: 4][build.result]
} catch (HarnessError e) {
  System.err.println("jenkinsfile-harness: ${e.message}")
  build.result = 'INVALID'
  exitCode = 2
} catch (Throwable e) {
  System.err.println("jenkinsfile-harness: unexpected ${e.class.name}: ${e.message}")
  e.printStackTrace()
  build.result = 'INVALID'
  exitCode = 2
}
if (build.output != null) {
  def summary = [
    result: build.result,
    jenkinsfile: build.jenkinsfile,
    workspace: build.workspace?.toString(),
    stages: build.stagesRun,
    steps: build.steps,
    triggers: build.pipeline?.triggers?.collect { it.toString() } ?: [],
    options: build.pipeline?.options?.collect { it.toString() } ?: [],
    agent: build.pipeline?.agent?.toString(),
    params: build.params,
    environment: build.pipelineEnv.collectEntries { k, v -> [(k): build.secrets.contains(v) ? '****' : v] },
    tests: build.tests,
    archived: build.archived,
  ]
  build.output.resolve('summary.json').toFile().setText(JsonOutput.prettyPrint(JsonOutput.toJson(summary)), 'UTF-8')
}
System.exit(exitCode)
