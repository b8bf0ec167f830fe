___TERMS_OF_SERVICE___

By creating or modifying this file you agree to Google Tag Manager's Community
Template Gallery Developer Terms of Service available at
https://developers.google.com/tag-manager/gallery-tos (or such other URL as
Google may provide), as modified from time to time.


___INFO___

{
  "type": "TAG",
  "id": "cvt_temp_public_id",
  "version": 1,
  "securityGroups": [],
  "displayName": "Closedloop tracker",
  "categories": [
    "ANALYTICS",
    "ATTRIBUTION"
  ],
  "brand": {
    "id": "closedloop",
    "displayName": "Closedloop"
  },
  "description": "Loads the Closedloop first-party tracker (t.js) from your Closedloop API: page views, visitor and session cookies, and the visitor id in every form. Respects Consent Mode v2: nothing loads until analytics_storage is granted, and a later denial stops the tracker and deletes its cookies.",
  "containerContexts": [
    "WEB"
  ]
}


___TEMPLATE_PARAMETERS___

[
  {
    "type": "TEXT",
    "name": "apiOrigin",
    "displayName": "Closedloop API origin",
    "simpleValueType": true,
    "alwaysInSummary": true,
    "valueHint": "https://abc123.execute-api.eu-west-1.amazonaws.com",
    "help": "The base URL of your Closedloop HTTP API (printed by cdk deploy), without a path: the tag loads {origin}/t.js. The origin must also be listed in this template's \"Injects scripts\" permission.",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      },
      {
        "type": "REGEX",
        "args": [
          "^https://[A-Za-z0-9.-]+(:[0-9]+)?/?$"
        ],
        "errorMessage": "An https origin without a path, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com"
      }
    ]
  },
  {
    "type": "LABEL",
    "name": "consentNote",
    "displayName": "Consent Mode v2: the tracker loads only while analytics_storage is granted (an unset state counts as granted, as everywhere in GTM). A later grant starts it, a later denial stops it and deletes its cookies. Leave the tag's Consent Settings at \"No additional consent required\" and fire it on \"Initialization - All Pages\"."
  }
]


___SANDBOXED_JS_FOR_WEB_TEMPLATE___

// Closedloop tracker for Google Tag Manager: loads {API origin}/t.js only while analytics_storage is
// granted (Consent Mode v2), and follows later updates. docs/tracker.md, "Google Tag Manager".
const addConsentListener = require('addConsentListener');
const callInWindow = require('callInWindow');
const createArgumentsQueue = require('createArgumentsQueue');
const injectScript = require('injectScript');
const isConsentGranted = require('isConsentGranted');
const logToConsole = require('logToConsole');
const queryPermission = require('queryPermission');
const templateStorage = require('templateStorage');

const CONSENT_TYPE = 'analytics_storage';

// The API's base URL without trailing slashes; the tracker takes it back from its own src.
let origin = data.apiOrigin || '';
while (origin.length && origin.charAt(origin.length - 1) === '/') {
  origin = origin.slice(0, origin.length - 1);
}
const trackerUrl = origin + '/t.js';

// Calls go through window.closedloop: the queue stub until t.js has loaded, the tracker after.
const command = (name, value) => callInWindow('closedloop', name, value);

const load = (onLoaded, onFailed) => {
  if (templateStorage.getItem('injected')) {
    onLoaded();
    return;
  }
  templateStorage.setItem('injected', true);
  injectScript(
    trackerUrl,
    onLoaded,
    () => {
      templateStorage.removeItem('injected'); // a later grant may try again
      logToConsole('Closedloop: could not load ' + trackerUrl);
      onFailed();
    },
    'closedloop'
  );
};

if (origin.indexOf('https://') !== 0 || !queryPermission('inject_script', trackerUrl)) {
  logToConsole(
    'Closedloop: ' + trackerUrl + ' is not an https URL allowed by this template\'s "Injects scripts" ' +
      'permission; add the API origin there (docs/tracker.md, "Google Tag Manager").'
  );
  data.gtmOnFailure();
} else {
  // The stub queues commands in window.closedloop.q; t.js replays them in order when it loads.
  createArgumentsQueue('closedloop', 'closedloop.q');

  // Registered once per page, however often the tag fires.
  if (!templateStorage.getItem('listening')) {
    templateStorage.setItem('listening', true);
    addConsentListener(CONSENT_TYPE, (consentType, granted) => {
      if (granted) {
        // A grant made now also lifts a refusal an earlier denial left in the _cl_consent cookie.
        command('consent', true);
        load(() => {}, () => {});
      } else if (templateStorage.getItem('injected')) {
        // Withdrawn: the tracker deletes its cookies and form fields, drops unsent events and stops.
        command('consent', false);
      }
    });
  }

  if (isConsentGranted(CONSENT_TYPE)) {
    load(data.gtmOnSuccess, data.gtmOnFailure);
  } else {
    // Nothing is loaded, set or sent until analytics_storage is granted.
    data.gtmOnSuccess();
  }
}


___WEB_PERMISSIONS___

[
  {
    "instance": {
      "key": {
        "publicId": "access_consent",
        "versionId": "1"
      },
      "param": [
        {
          "key": "consentTypes",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "consentType"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "analytics_storage"
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": false
                  }
                ]
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "inject_script",
        "versionId": "1"
      },
      "param": [
        {
          "key": "urls",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 1,
                "string": "https://*.amazonaws.com/t.js"
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "access_globals",
        "versionId": "1"
      },
      "param": [
        {
          "key": "keys",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "closedloop"
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": true
                  }
                ]
              },
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "closedloop.q"
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": false
                  }
                ]
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "access_template_storage",
        "versionId": "1"
      },
      "param": []
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "logging",
        "versionId": "1"
      },
      "param": [
        {
          "key": "environments",
          "value": {
            "type": 1,
            "string": "debug"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  }
]


___TESTS___

scenarios:
- name: Granted at load injects t.js and succeeds
  code: |-
    mock('isConsentGranted', (consentType) => true);
    let injected;
    mock('injectScript', (url, onSuccess, onFailure) => {
      injected = url;
      onSuccess();
    });
    runCode(mockData);
    assertThat(injected).isEqualTo('https://abc123.execute-api.eu-west-1.amazonaws.com/t.js');
    assertApi('addConsentListener').wasCalled();
    assertApi('gtmOnSuccess').wasCalled();
- name: Denied at load injects nothing
  code: |-
    mock('isConsentGranted', (consentType) => false);
    runCode(mockData);
    assertApi('injectScript').wasNotCalled();
    assertApi('callInWindow').wasNotCalled();
    assertApi('gtmOnSuccess').wasCalled();
- name: An origin outside the permission fails
  code: |-
    mock('isConsentGranted', (consentType) => true);
    runCode({apiOrigin: 'https://track.example.org'});
    assertApi('injectScript').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
setup: |-
  const mockData = {apiOrigin: 'https://abc123.execute-api.eu-west-1.amazonaws.com/'};


___NOTES___

Closedloop's tag template for its tracker t.js. Install: docs/tracker.md, "Google Tag Manager". Tested by tests/unit/test_gtm_template.py.


