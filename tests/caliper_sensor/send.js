// A Caliper sensor built with ims-caliper (IMS Global's caliper-js): reads a list of learning
// events (JSON, argv[4]), builds them with the library's factories, wraps them in one envelope
// and sends it to argv[2] with the library's HTTP client (Authorization: Bearer argv[3]); the
// library's client logs its answer, no more. With argv[5] "print", the envelope is sent as the
// library serialises it with `request` (the library's own HTTP dependency), and the answer's
// status and body are printed: a sensor that retries and reads the answer.
const fs = require('fs');
const request = require('request');
const C = 'ims-caliper/lib/';
const sensor = require(C + 'sensor');
const client = require(C + 'clients/httpClient');
const clientUtils = require(C + 'clients/clientUtils');
const httpOptions = require(C + 'clients/httpOptions');
const actions = require(C + 'actions/actions');
const eventFactory = require(C + 'events/eventFactory');
const entityFactory = require(C + 'entities/entityFactory');
const GradeEvent = require(C + 'events/gradeEvent');
const AssessmentItemEvent = require(C + 'events/assessmentItemEvent');
const NavigationEvent = require(C + 'events/navigationEvent');
const Person = require(C + 'entities/agent/person');
const SoftwareApplication = require(C + 'entities/agent/softwareApplication');
const AssessmentItem = require(C + 'entities/resource/assessmentItem');
const LearningObjective = require(C + 'entities/resource/learningObjective');
const WebPage = require(C + 'entities/resource/webPage');
const Attempt = require(C + 'entities/resource/attempt');
const Score = require(C + 'entities/outcome/score');
const FillinBlankResponse = require(C + 'entities/response/fillinBlankResponse');
const moment = require('moment');
const uuid = require('node-uuid');

const [url, key, specFile, mode] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specFile, 'utf8'));
const make = entityFactory();
const grader = make.create(SoftwareApplication, {id: 'https://content.example.com/autograder'});

function item(e) {
  const objectives = (e.objectives || []).map(code =>
    make.create(LearningObjective, {id: 'https://content.example.com/objectives/' + code, name: code}));
  return make.create(AssessmentItem, {id: e.item, name: 'question', learningObjectives: objectives});
}

const data = spec.map(function (e) {
  const learner = make.create(Person, {id: e.learner});
  const time = moment.utc(e.time);
  const id = 'urn:uuid:' + (e.id || uuid.v4());
  const attempt = make.create(Attempt, {id: e.item + '/users/' + encodeURIComponent(e.learner) + '/attempts/1',
    assignee: learner, assignable: item(e), count: 1});
  if (e.event === 'graded') {
    const score = make.create(Score, {id: attempt.id + '/score', attempt: attempt.id, maxScore: e.maxScore,
      scoreGiven: e.scoreGiven, scoredBy: grader.id});
    return eventFactory().create(GradeEvent, {id: id, actor: grader, action: actions.graded.term, object: attempt,
      eventTime: time, generated: score});
  }
  if (e.event === 'completed') {
    const response = make.create(FillinBlankResponse, {id: attempt.id + '/response', attempt: attempt, values: ['3/4']});
    return eventFactory().create(AssessmentItemEvent, {id: id, actor: learner, action: actions.completed.term,
      object: item(e), eventTime: time, generated: response});
  }
  if (e.event === 'navigated') {
    return eventFactory().create(NavigationEvent, {id: id, actor: learner, action: actions.navigatedTo.term,
      object: make.create(WebPage, {id: e.item, name: 'a page'}), eventTime: time});
  }
  throw new Error('unknown event kind ' + e.event);
});

sensor.initialize('https://content.example.com/sensors/1');
const envelope = sensor.createEnvelope({data: data});
if (mode === 'print') {
  request({uri: url, method: 'POST', json: JSON.parse(clientUtils.stringify(envelope)),
    headers: {Authorization: 'Bearer ' + key}}, function (err, res, body) {
    if (err) { console.error(String(err)); process.exit(2); }
    console.log(JSON.stringify({status: res.statusCode, body: body}));
  });
} else {
  const options = Object.assign({}, httpOptions, {
    uri: url, json: true, headers: Object.assign({}, httpOptions.headers, {Authorization: 'Bearer ' + key})});
  client.initialize('zpd', options);
  sensor.registerClient(client);
  sensor.sendToClient(client, envelope);
}
